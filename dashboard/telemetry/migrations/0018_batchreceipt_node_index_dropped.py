"""Drop ``BatchReceipt.node``'s own index: ``receipt_unique`` (node, stream, seq, received_at) leads with the
node and serves every lookup by node (the receipt claim, the duplicate's digest, completeness) and the
deletes that cascade from one; the single-column index only took space and ingest time, on every receipt
partition.

Only the index goes, as in 0016 (whose reasons and shape this follows): the name is the one Django gave it,
the same on every database; dropping the partitioned table's index drops every partition's copy, and
migrating back makes it on every partition again.
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

INDEX = "dashboard_batchreceipt_node_id_3c7d2147"


class Migration(migrations.Migration):

    dependencies = [
        ("telemetry", "0017_window_seq_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="batchreceipt",
                    name="node",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name="receipts", to="telemetry.node"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(f"DROP INDEX IF EXISTS {INDEX}",
                                  f"CREATE INDEX IF NOT EXISTS {INDEX} ON dashboard_batchreceipt (node_id)"),
            ],
        ),
    ]

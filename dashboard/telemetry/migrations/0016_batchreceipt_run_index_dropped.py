"""Drop ``BatchReceipt.run``'s own index: ``receipt_run_received`` (run, received_at; migration 0014) leads with
the run and serves every lookup by run (``completeness``, ``liveness``) and the deletes that cascade from one;
the single-column index only took space and ingest time, on every receipt partition.

Only the index goes, as in 0015: Django's ``AlterField`` would also drop and re-add (re-validate) the foreign
key. The index's name is the one Django gave it (from table and column: the same on every database; 0013
made it again under its own name on the partitioned table). On PostgreSQL dropping the partitioned table's
index drops every partition's copy with it; making it again (migrating back) makes it on every partition, as
0014 does. On SQLite it is a plain index.
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

INDEX = "dashboard_batchreceipt_run_id_9d14c200"


class Migration(migrations.Migration):

    dependencies = [
        ("telemetry", "0015_runevent_run_index_dropped"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="batchreceipt",
                    name="run",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name="receipts", to="telemetry.run"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(f"DROP INDEX IF EXISTS {INDEX}",
                                  f"CREATE INDEX IF NOT EXISTS {INDEX} ON dashboard_batchreceipt (run_id)"),
            ],
        ),
    ]

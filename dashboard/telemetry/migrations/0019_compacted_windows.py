"""Compacted windows (``dashboard.telemetry.compaction``): ``SampleWindow.parts`` (null for a window as sent) and
``RunGpu.compacted_ms`` (where the next compaction pass starts). Both are new columns with a constant default
or none: PostgreSQL adds them without rewriting a table or a partition."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("telemetry", "0018_batchreceipt_node_index_dropped"),
    ]

    operations = [
        migrations.AddField(
            model_name="rungpu",
            name="compacted_ms",
            field=models.BigIntegerField(default=0, db_default=0),
        ),
        migrations.AddField(
            model_name="samplewindow",
            name="parts",
            field=models.BinaryField(null=True),
        ),
    ]

"""Compacted windows (``dashboard.telemetry.compaction``): ``SampleWindow.parts`` (null for a window as sent) and
``RunGpu.compacted_ms`` (where the next compaction pass starts). Both are new columns with a constant default
or none: PostgreSQL adds them without rewriting a table or a partition.

Migrating back first turns every compacted row into the windows it holds (their readings encoded again, the
same bytes as stored before), so no figure changes and ``parts`` can go."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

from dashboard.telemetry import compaction


def expand(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:
        compaction.expand_all(cursor)
        if schema_editor.connection.vendor == "postgresql":
            # The windows' deferred foreign-key checks now, not at commit: PostgreSQL will not alter a table
            # with checks pending, and dropping ``parts`` comes next in this transaction.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


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
        # Last, so that migrating back runs it first, while ``parts`` is there.
        migrations.RunPython(migrations.RunPython.noop, expand),
    ]

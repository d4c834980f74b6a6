"""Windows lose their unique ``(run_gpu, stream, seq)`` index for a plain ``(run_gpu, seq)`` one: a third of the size.

The unique index guarded nothing the receipts do not: a batch's windows are written only in the transaction
that claims its receipt (``batch_store.claim_receipts``), and since 0013 the index had to end with the
partition key (``first_ms``), so it no longer even said (run_gpu, stream, seq) was stored once. What it did
serve were lookups by (GPU, stream, seq): the continuity check's previous window and the first window of a
stream. ``(run_gpu_id, seq)`` serves those too (a GPU's windows with one number are one per stream), with no
32-character stream in every entry: measured on the ingest benchmark's database, 3.0 bytes a sample of
index become about 1 (docs/benchmarks.md).

``windows.reach_back_ms`` now bounds its walk back by ``RunGpu.max_window_ms``, which windows stored before 0004
left at 0 (or below their longest, for a run that went on after it): it is filled in here from the windows.

On PostgreSQL both statements act on every partition (``CREATE INDEX`` on a partitioned table cannot be
``CONCURRENTLY``, and holds off writes while it builds; the fill-in reads every window once: on a large
database, run ``migrate`` in a maintenance window). Migrating back makes the
unique index again, with the partition key, as 0013 left it. On SQLite, Django's own schema operations.
"""

from __future__ import annotations

from django.db import migrations, models

OLD = models.UniqueConstraint(fields=("run_gpu", "stream", "seq"), name="window_unique_per_gpu_stream_seq")
NEW = models.Index(fields=["run_gpu", "seq"], name="window_gpu_seq")
TABLE = "dashboard_samplewindow"
# Portable (SQLite before 3.33 has no UPDATE ... FROM): each GPU's part in a run whose windows hold a longer one.
_LONGER = f"FROM {TABLE} w WHERE w.run_gpu_id = dashboard_rungpu.id"
_SPAN = "w.last_ms - COALESCE(w.prev_t_ms, w.first_ms)"
FILL_MAX_WINDOW = (
    f"UPDATE dashboard_rungpu SET max_window_ms = (SELECT MAX({_SPAN}) {_LONGER}) "
    f"WHERE EXISTS (SELECT 1 {_LONGER} AND {_SPAN} > dashboard_rungpu.max_window_ms)"
)


def forward(apps, schema_editor) -> None:
    model = apps.get_model("telemetry", "SampleWindow")
    if schema_editor.connection.vendor == "postgresql":
        # The new index first (a SHARE lock: pages still read), the old one's exclusive lock last, briefly.
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {NEW.name} ON {TABLE} (run_gpu_id, seq)")
        schema_editor.execute(FILL_MAX_WINDOW)
        schema_editor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {OLD.name}")
        return
    # SQLite drops a unique constraint by making the table again from the model: this state's model still
    # has it, so it goes from the model first.
    model._meta.constraints = [c for c in model._meta.constraints if c.name != OLD.name]
    schema_editor.remove_constraint(model, OLD)
    schema_editor.add_index(model, NEW)
    schema_editor.execute(FILL_MAX_WINDOW)


def backward(apps, schema_editor) -> None:
    model = apps.get_model("telemetry", "SampleWindow")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {NEW.name}")
        schema_editor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {OLD.name} UNIQUE (run_gpu_id, stream, seq, first_ms)")
    else:
        schema_editor.remove_index(model, NEW)
        schema_editor.add_constraint(model, OLD)


class Migration(migrations.Migration):

    dependencies = [
        ("telemetry", "0016_batchreceipt_run_index_dropped"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="samplewindow", name=OLD.name),
                migrations.AddIndex(model_name="samplewindow", index=NEW),
            ],
            database_operations=[migrations.RunPython(forward, backward)],
        ),
    ]

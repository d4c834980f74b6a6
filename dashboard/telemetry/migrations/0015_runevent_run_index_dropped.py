"""Drop ``RunEvent.run``'s own index: ``event_run_kind_time`` (run, kind, t_ms) leads with the run and serves
every lookup by run, and the deletes that cascade from one; the single-column index only took space (about
0.25 bytes a stored sample in ``make bench-ingest``) and ingest time.

Only the index goes: Django's ``AlterField`` would also drop and re-add (re-validate) the foreign key. The
index's name is the one Django gave it (derived from table and column, the same on every database).
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

INDEX = "dashboard_runevent_run_id_bdf0993b"


class Migration(migrations.Migration):

    dependencies = [
        ("telemetry", "0014_silent_run_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="runevent",
                    name="run",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name="events", to="telemetry.run"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(f"DROP INDEX IF EXISTS {INDEX}",
                                  f"CREATE INDEX IF NOT EXISTS {INDEX} ON dashboard_runevent (run_id)"),
            ],
        ),
    ]

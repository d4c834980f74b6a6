"""A run's events are found (and deleted with their run) through ``event_run_kind_time``, which leads with
the run: no index on the run alone takes space beside it (migration telemetry 0015 drops the old one, and
migrating back makes it again, events kept)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dashboard.projects.models import Project
from dashboard.telemetry.models import Node, Run, RunEvent
from tests.dashboard.telemetry.migration_states import migrated_to, node_and_run, plan
from tests.dashboard.test_migrations_keep_data import own_schema

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.usefixtures("postgres")]

BEFORE = [("telemetry", "0014_silent_run_indexes")]
AFTER = [("telemetry", "0015_runevent_run_index_dropped")]


def indexes_on_run_alone() -> set[str]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "dashboard_runevent")
    return {name for name, c in found.items() if c["index"] and c["columns"] == ["run_id"]}


def test_a_runs_events_are_found_and_deleted_through_the_run_kind_time_index():
    project = Project.objects.create(name="vision")
    node = Node.objects.create(project=project, name="n1")
    run = Run.objects.create(project=project, name="r")
    RunEvent.objects.bulk_create([RunEvent(run=run, node=node, t_ms=t, kind="step_end") for t in range(100)])

    assert indexes_on_run_alone() == {"event_plan_markers"}  # the plan markers' partial index, a few rows
    lookup = plan(*RunEvent.objects.filter(run=run).query.sql_with_params())
    assert "event_run_kind_time" in lookup, lookup
    assert "event_run_kind_time" in plan("DELETE FROM dashboard_runevent WHERE run_id = %s", [run.pk])
    run.delete()
    assert not RunEvent.objects.exists()


def test_the_migration_drops_the_run_index_and_migrating_back_makes_it_again_events_kept():
    with own_schema("event_indexes"):
        apps = migrated_to(BEFORE)
        node, run = node_and_run(apps)
        apps.get_model("telemetry", "RunEvent").objects.create(run=run, node=node, t_ms=1, kind="step_end")
        assert "dashboard_runevent_run_id_bdf0993b" in indexes_on_run_alone()

        MigrationExecutor(connection).migrate(AFTER)
        assert indexes_on_run_alone() == {"event_plan_markers"}
        assert RunEvent.objects.filter(run_id=run.pk).count() == 1

        MigrationExecutor(connection).migrate(BEFORE)
        assert "dashboard_runevent_run_id_bdf0993b" in indexes_on_run_alone()
        assert RunEvent.objects.filter(run_id=run.pk).count() == 1

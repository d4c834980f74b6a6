"""A run's batch receipts are found (completeness, liveness) and deleted with their run through
``receipt_run_received``, which leads with the run: no index on the run alone takes space beside it, on the
receipts' table or any partition (migration telemetry 0016 drops the old one, and migrating back makes it
again on every partition, receipts kept)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Exists, Max, OuterRef, Sum
from django.utils import timezone

from dashboard.projects.models import Project
from dashboard.telemetry.models import BatchReceipt, Node, Run
from tests.dashboard.telemetry.test_run_event_indexes import plan
from tests.dashboard.test_migrations_keep_data import own_schema

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.usefixtures("postgres")]

BEFORE = [("telemetry", "0015_runevent_run_index_dropped")]
AFTER = [("telemetry", "0016_batchreceipt_run_index_dropped")]
RUN_RECEIVED = ("receipt_run_received", "_run_id_received_at_idx")  # the index, and its partitions' copies


def receipt_tables() -> set[str]:
    """The receipts' table and its partitions, in the connection's schema."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT inhrelid::regclass::text FROM pg_inherits "
                       "WHERE inhparent = 'dashboard_batchreceipt'::regclass")
        return {"dashboard_batchreceipt"} | {row[0] for row in cursor.fetchall()}


def tables_with_an_index_on_run_alone() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_indexes WHERE schemaname = current_schema() "
                       "AND tablename = ANY(%s) AND indexdef LIKE '%%(run_id)'", [sorted(receipt_tables())])
        return {row[0] for row in cursor.fetchall()}


def store_receipts(node: Node, run: Run, count: int = 50) -> None:
    BatchReceipt.objects.bulk_create([BatchReceipt(node=node, stream="s1", seq=seq, run=run, body_sha256="0" * 64,
                                                   samples=10) for seq in range(count)])


def test_a_runs_receipts_are_found_and_deleted_through_the_run_received_index():
    project = Project.objects.create(name="vision")
    node = Node.objects.create(project=project, name="n1")
    run = Run.objects.create(project=project, name="r")
    store_receipts(node, run)
    since = timezone.now() - timedelta(minutes=10)

    assert tables_with_an_index_on_run_alone() == set()
    lookups = {
        "completeness per stream": BatchReceipt.objects.filter(run=run).values("node_id", "stream")
        .annotate(batches=Count("id"), samples=Sum("samples"), top=Max("seq")),
        "completeness gaps": BatchReceipt.objects.filter(run=run, node_id=node.pk, stream="s1").values_list("seq"),
        "silent runs": Run.objects.filter(created_at__lt=since).exclude(
            Exists(BatchReceipt.objects.filter(run=OuterRef("pk"), received_at__gte=since))),
    }
    for what, query in lookups.items():
        found = plan(*query.query.sql_with_params())
        assert any(name in found for name in RUN_RECEIVED), (what, found)
    deleted = plan("DELETE FROM dashboard_batchreceipt WHERE run_id IN (%s)", [run.pk])  # Run.delete's cascade
    assert any(name in deleted for name in RUN_RECEIVED), deleted
    run.delete()
    assert not BatchReceipt.objects.exists()


def test_the_migration_drops_the_run_index_everywhere_and_migrating_back_makes_it_again_receipts_kept():
    with own_schema("receipt_indexes"):
        executor = MigrationExecutor(connection)
        executor.migrate(BEFORE)
        apps = executor.loader.project_state(BEFORE).apps
        project = apps.get_model("projects", "Project").objects.create(name="vision")
        node = apps.get_model("telemetry", "Node").objects.create(project=project, name="n1")
        run = apps.get_model("telemetry", "Run").objects.create(project=project, name="r")
        apps.get_model("telemetry", "BatchReceipt").objects.create(
            node=node, stream="s1", seq=0, run=run, body_sha256="0" * 64, samples=10)
        every_table = receipt_tables()
        assert len(every_table) > 1  # the partitioned table and its partitions
        assert tables_with_an_index_on_run_alone() == every_table

        MigrationExecutor(connection).migrate(AFTER)
        assert tables_with_an_index_on_run_alone() == set()
        assert BatchReceipt.objects.filter(run_id=run.pk).count() == 1

        MigrationExecutor(connection).migrate(BEFORE)
        assert tables_with_an_index_on_run_alone() == every_table
        assert BatchReceipt.objects.filter(run_id=run.pk).count() == 1

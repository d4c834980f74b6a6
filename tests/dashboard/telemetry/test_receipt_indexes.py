"""A run's batch receipts are found (completeness, liveness) and deleted with their run through
``receipt_run_received``, which leads with the run, and a node's through ``receipt_unique``, which leads with
the node: no index on the run or the node alone takes space beside them, on the receipts' table or any
partition (migrations telemetry 0016 and 0018 drop the old ones, and migrating back makes them again on
every partition, receipts kept)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Exists, Max, OuterRef, Sum
from django.utils import timezone

from dashboard.projects.models import Project
from dashboard.telemetry.models import BatchReceipt, Node, Run
from tests.dashboard.telemetry.migration_states import (
    indexed_on,
    migrated_to,
    node_and_run,
    plan,
    with_partitions,
)
from tests.dashboard.test_migrations_keep_data import own_schema

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.usefixtures("postgres")]

BEFORE = [("telemetry", "0015_runevent_run_index_dropped")]
AFTER = [("telemetry", "0018_batchreceipt_node_index_dropped")]
RUN_RECEIVED = ("receipt_run_received", "_run_id_received_at_idx")  # the index, and its partitions' copies
UNIQUE = ("receipt_unique", "_node_id_stream_seq_received")  # partitions' copies: names cut to 63


def receipt_tables() -> set[str]:
    return with_partitions("dashboard_batchreceipt")


def tables_with_an_index_on_alone(column: str) -> set[str]:
    return indexed_on(receipt_tables(), f"({column})")


def store_receipts(node: Node, run: Run, count: int = 50) -> None:
    BatchReceipt.objects.bulk_create([BatchReceipt(node=node, stream="s1", seq=seq, run=run, body_sha256="0" * 64,
                                                   samples=10) for seq in range(count)])


def test_a_runs_receipts_are_found_and_deleted_through_the_run_received_index():
    project = Project.objects.create(name="vision")
    node = Node.objects.create(project=project, name="n1")
    run = Run.objects.create(project=project, name="r")
    store_receipts(node, run)
    since = timezone.now() - timedelta(minutes=10)

    assert tables_with_an_index_on_alone("run_id") == tables_with_an_index_on_alone("node_id") == set()
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
    by_node = plan("DELETE FROM dashboard_batchreceipt WHERE node_id IN (%s)", [node.pk])  # Node.delete's cascade
    assert any(name in by_node for name in UNIQUE), by_node
    digests = plan("SELECT body_sha256 FROM dashboard_batchreceipt WHERE (node_id, stream, seq) IN ((%s, %s, %s))",
                   [node.pk, "s1", 3])  # a duplicate's stored digest (group_store)
    assert any(name in digests for name in UNIQUE), digests
    run.delete()
    assert not BatchReceipt.objects.exists()


def test_the_migrations_drop_the_run_and_node_indexes_everywhere_and_migrating_back_makes_them_again():
    with own_schema("receipt_indexes"):
        apps = migrated_to(BEFORE)
        node, run = node_and_run(apps)
        apps.get_model("telemetry", "BatchReceipt").objects.create(
            node=node, stream="s1", seq=0, run=run, body_sha256="0" * 64, samples=10)
        every_table = receipt_tables()
        assert len(every_table) > 1  # the partitioned table and its partitions
        assert tables_with_an_index_on_alone("run_id") == tables_with_an_index_on_alone("node_id") == every_table

        MigrationExecutor(connection).migrate(AFTER)
        assert tables_with_an_index_on_alone("run_id") == tables_with_an_index_on_alone("node_id") == set()
        assert BatchReceipt.objects.filter(run_id=run.pk).count() == 1

        MigrationExecutor(connection).migrate(BEFORE)
        assert tables_with_an_index_on_alone("run_id") == tables_with_an_index_on_alone("node_id") == every_table
        assert BatchReceipt.objects.filter(run_id=run.pk).count() == 1

"""Migration 0014 gives ``liveness.mark_silent_runs`` its indexes: running runs by creation (partial) and each
run's receipts by arrival, on every receipt partition; it applies and reverses on a migrated database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Exists, OuterRef
from django.utils import timezone

from dashboard.telemetry.models import BatchReceipt, Run

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("telemetry", "0013_partitioned_windows")


def indexes() -> set[tuple[str, str]]:
    """(table, index definition's name part) of the two indexes, wherever PostgreSQL made them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename, indexname FROM pg_indexes WHERE indexname = 'run_running_since' "
                       "OR (tablename LIKE 'dashboard_batchreceipt%%' AND indexdef LIKE '%%(run_id, received_at)')")
        return {(table, name) for table, name in cursor.fetchall()}


def receipt_tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'dashboard_batchreceipt'")
        return {"dashboard_batchreceipt"} | {row[0] for row in cursor.fetchall()}


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([target])


def migrate_to_the_end() -> None:
    """Every app at its last migration again, later ones than 0014 included: the tests after this one share
    the database."""
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_the_migration_adds_both_indexes_and_reverses(postgres):
    assert connection.vendor == "postgresql"
    assert {table for table, _ in indexes()} == {"dashboard_run"} | receipt_tables()
    try:
        migrate(BEFORE)
        assert indexes() == set()
    finally:
        migrate_to_the_end()
    assert {table for table, _ in indexes()} == {"dashboard_run"} | receipt_tables()


def test_the_silent_runs_query_can_use_them(postgres):
    since = timezone.now() - timedelta(minutes=10)
    heard = BatchReceipt.objects.filter(run=OuterRef("pk"), received_at__gte=since)
    query = Run.objects.filter(status=Run.Status.RUNNING, created_at__lt=since).exclude(Exists(heard))
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # the tables are empty here: ask whether the indexes fit
        try:
            plan = query.explain()
        finally:
            cursor.execute("RESET enable_seqscan")
    assert "run_running_since" in plan
    assert "run_id_received_at_idx" in plan or "receipt_run_received" in plan

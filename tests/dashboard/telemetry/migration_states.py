"""What the index migrations' tests share: a schema migrated to a past state with a run in it, and which
index PostgreSQL picks for a statement."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.factories import T0_MS


def migrated_to(target: list[tuple[str, str]]) -> Any:
    """Migrate the connection's schema to ``target``; that state's historical apps."""
    executor = MigrationExecutor(connection)
    executor.migrate(target)
    return executor.loader.project_state(target).apps


def node_and_run(apps: Any) -> tuple[Any, Any]:
    """A project's node and run, made with the historical ``apps``."""
    project = apps.get_model("projects", "Project").objects.create(name="vision")
    node = apps.get_model("telemetry", "Node").objects.create(project=project, name="n1")
    return node, apps.get_model("telemetry", "Run").objects.create(project=project, name="r")


def gpu_with_two_windows(apps: Any) -> Any:
    """A run's GPU (its ``RunGpu``, made with the historical ``apps``) holding two consecutive windows of
    stream s1, the second with energy 2.0 J, as stored before migration 0004: no longest window recorded."""
    node, run = node_and_run(apps)
    gpu = apps.get_model("telemetry", "Gpu").objects.create(node=node, uuid="GPU-1", index=0)
    run_gpu = apps.get_model("telemetry", "RunGpu").objects.create(run=run, gpu=gpu, max_window_ms=0)
    for seq, prev_t_ms in ((0, None), (1, T0_MS + 4_900)):
        apps.get_model("telemetry", "SampleWindow").objects.create(
            run_gpu=run_gpu, stream="s1", seq=seq, first_ms=T0_MS + 5_000 * seq,
            last_ms=T0_MS + 5_000 * seq + 4_900, samples=50, energy_j=1.0 + seq, prev_t_ms=prev_t_ms,
            readings=b"x")
    return run_gpu


def with_partitions(table: str) -> set[str]:
    """``table`` and its partitions, in the connection's schema."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass", [table])
        return {table} | {row[0] for row in cursor.fetchall()}


def indexed_on(tables: set[str], columns: str) -> set[str]:
    """Those of ``tables`` with an index on exactly ``columns`` (as PostgreSQL writes them: "(a, b)")."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_indexes WHERE schemaname = current_schema() "
                       "AND tablename = ANY(%s) AND indexdef LIKE %s", [sorted(tables), f"%{columns}"])
        return {row[0] for row in cursor.fetchall()}


def plan(sql: str, params: list | None = None) -> str:
    """PostgreSQL's plan for ``sql``, with sequential scans off: the test tables are tiny, this asks which
    index serves."""
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            cursor.execute("EXPLAIN " + sql, params)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET enable_seqscan")

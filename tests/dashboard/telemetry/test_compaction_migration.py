"""Migrating back past telemetry 0019 on PostgreSQL, with compacted rows in the partitioned windows' table:
every row becomes the windows it holds again (the same columns and bytes), then ``parts`` goes."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dashboard.telemetry import compaction
from tests.dashboard.telemetry.migration_states import migrated_to
from tests.dashboard.telemetry.test_compaction import CHUNK_MS, FAR_FUTURE_MS, Stream, send
from tests.dashboard.test_migrations_keep_data import own_schema
from tests.factories import T0_MS, register

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.usefixtures("postgres")]

BEFORE = [("telemetry", "0018_batchreceipt_node_index_dropped")]
FIELDS = "run_gpu_id, stream, seq, first_ms, last_ms, samples, energy_j, prev_t_ms, prev_energy_mj, readings"


def windows() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {FIELDS} FROM dashboard_samplewindow ORDER BY run_gpu_id, stream, seq")
        return [(*row[:-1], bytes(row[-1])) for row in cursor.fetchall()]


def test_migrating_back_turns_compacted_rows_into_their_windows_on_every_partition():
    with own_schema("compaction_back"):
        executor = MigrationExecutor(connection)
        migrated_to(executor.loader.graph.leaf_nodes())
        node = register()
        stream = Stream("s1", T0_MS + 2_300, seed=21)
        for seq in range(30):
            send(stream.batch(node, seq))
        stored = windows()
        assert compaction.compact(FAR_FUTURE_MS, CHUNK_MS).rows
        assert len(windows()) < len(stored)

        migrated_to(BEFORE)

        assert windows() == stored
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
                           "AND column_name IN ('parts', 'compacted_ms')")
            assert cursor.fetchone()[0] == 0

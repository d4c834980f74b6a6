"""A window is found by GPU, stream and batch number through ``window_gpu_seq`` (run_gpu, seq), with no
unique (run_gpu, stream, seq) index beside it on the windows' table or any partition (migration telemetry
0017 swaps them; migrating back makes the unique one again, windows kept)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard.telemetry import coverage, ingest
from dashboard.telemetry.models import Node, RunGpu, SampleWindow
from dashboard.telemetry.windows import reach_back_ms
from tests.dashboard.telemetry.migration_states import (
    gpu_with_two_windows,
    indexed_on,
    migrated_to,
    plan,
    with_partitions,
)
from tests.dashboard.test_migrations_keep_data import own_schema
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, register

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.usefixtures("postgres")]

BEFORE = [("telemetry", "0016_batchreceipt_run_index_dropped")]
AFTER = [("telemetry", "0017_window_seq_index")]
UNIQUE = "(run_gpu_id, stream, seq, first_ms)"
BY_SEQ = "(run_gpu_id, seq)"


def window_tables() -> set[str]:
    return with_partitions("dashboard_samplewindow")


def tables_indexed_on(columns: str) -> set[str]:
    return indexed_on(window_tables(), columns)


def send(node, stream: str, seqs: range, readings: int = 10) -> None:
    """Windows of ``readings`` readings 100 ms apart from T0, as stream ``stream``'s batches ``seqs``."""
    for seq in seqs:
        t_ms = [T0_MS + (seq * readings + i) * 100 for i in range(readings)]
        energy_mj = [1_000_000 + 30_000 * (seq * readings + i) for i in range(readings)]
        prev = (t_ms[0] - 100, energy_mj[0] - 30_000) if seq else None
        entry = gpu_entry("GPU-1", t_ms, energy_mj, prev=prev)
        assert ingest.ingest_batch(envelope(node, batch_payload([entry], stream=stream, seq=seq))).status == "stored"


def test_lookups_by_gpu_stream_and_number_are_served_by_the_seq_index():
    node = register()
    node_id = Node.objects.get().pk
    send(node, "a", range(6))
    send(node, "b", range(3))  # a second stream: the GPU is shared, so its batches ask coverage
    (run_gpu,) = RunGpu.objects.all()
    assert run_gpu.shared and run_gpu.streams == 2
    assert tables_indexed_on(UNIQUE) == set() and tables_indexed_on(BY_SEQ) == window_tables()

    with CaptureQueriesContext(connection) as asked:
        assert coverage.new_to([run_gpu.pk], node_id, "a", 6) == set()  # its batch 5 holds the GPU
    (probe,) = (query["sql"] for query in asked.captured_queries)
    assert "window_gpu_seq" in plan(probe) or "run_gpu_id_seq_idx" in plan(probe), plan(probe)
    with CaptureQueriesContext(connection) as asked:
        assert coverage.new_to([run_gpu.pk], node_id, "c", 0) == {run_gpu.pk}  # a stream with nothing stored
    assert len(asked.captured_queries) == 1  # its receipts: none, so no window of it is looked for
    with CaptureQueriesContext(connection) as asked:
        assert coverage.new_to([run_gpu.pk], node_id, "b", 9) == set()  # after lost batches 3 to 8
    assert len(asked.captured_queries) == 3  # batch 8's window; the nearest receipts; batch 2's window

    continuity = SampleWindow.objects.filter(run_gpu=run_gpu, stream="a", seq=4).values("last_ms")
    found = plan(*continuity.query.sql_with_params())
    assert "window_gpu_seq" in found or "run_gpu_id_seq_idx" in found, found


def test_a_window_of_another_stream_reaching_into_the_range_is_found_within_the_longest_window():
    node = register()
    send(node, "a", range(4))  # one-second windows from T0
    send(node, "b", range(2))
    (run_gpu,) = RunGpu.objects.all()
    assert run_gpu.max_window_ms == 1_000  # from the previous reading (100 ms before a window) to its last
    # From +1,250 both streams' windows from +1,000 reach in; from +2,850 a's from +2,000 does, b has ended.
    assert reach_back_ms([run_gpu.pk], T0_MS + 1_250) == T0_MS + 1_000
    assert reach_back_ms([run_gpu.pk], T0_MS + 2_850) == T0_MS + 2_000
    send(node, "c", range(2), readings=40)  # four-second windows: the GPU's longest is now 4 s
    run_gpu.refresh_from_db()
    assert run_gpu.max_window_ms == 4_000
    # From +3,750: c's window from +0 (to +3,900) reaches in, 3.75 s back; a's from +3,000 does too.
    assert reach_back_ms([run_gpu.pk], T0_MS + 3_750) == T0_MS


def test_the_migration_swaps_the_indexes_everywhere_fills_the_longest_window_and_goes_back_windows_kept():
    with own_schema("window_seq_index"):
        run_gpu = gpu_with_two_windows(migrated_to(BEFORE))
        every_table = window_tables()
        assert len(every_table) > 1  # the partitioned table and its partitions
        assert tables_indexed_on(UNIQUE) == every_table and tables_indexed_on(BY_SEQ) == set()

        apps = migrated_to(AFTER)
        assert tables_indexed_on(UNIQUE) == set() and tables_indexed_on(BY_SEQ) == every_table
        assert SampleWindow.objects.filter(run_gpu_id=run_gpu.pk).count() == 2
        # window 1, from its previous reading
        assert apps.get_model("telemetry", "RunGpu").objects.get(pk=run_gpu.pk).max_window_ms == 5_000

        migrated_to(BEFORE)
        assert tables_indexed_on(UNIQUE) == every_table and tables_indexed_on(BY_SEQ) == set()
        assert SampleWindow.objects.filter(run_gpu_id=run_gpu.pk).count() == 2

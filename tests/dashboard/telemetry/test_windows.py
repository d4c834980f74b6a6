"""The windows overlapping a range are found per agent stream, in one statement, through the indexes."""

from __future__ import annotations

import pytest

from dashboard.telemetry import ingest
from dashboard.telemetry.models import RunGpu
from dashboard.telemetry.windows import TimeRange, overlapping, reach_back_ms
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, register

pytestmark = pytest.mark.django_db


def send(node, stream: str, *, start_ms: int, windows: int, uuid: str = "GPU-1", index: int = 0) -> None:
    """``windows`` one-second windows of ten readings from ``start_ms``, as stream ``stream``."""
    for seq in range(windows):
        t_ms = [start_ms + (seq * 10 + i) * 100 for i in range(10)]
        energy_mj = [1_000_000 + 30_000 * (seq * 10 + i) for i in range(10)]
        prev = (t_ms[0] - 100, energy_mj[0] - 30_000) if seq else None
        entry = gpu_entry(uuid, t_ms, energy_mj, index=index, prev=prev)
        assert ingest.ingest_batch(envelope(node, batch_payload([entry], stream=stream, seq=seq))).status == "stored"


def firsts(run_gpu_ids: list[int], span: TimeRange) -> list[int]:
    return list(overlapping(run_gpu_ids, span).order_by("first_ms").values_list("first_ms", flat=True))


def test_a_window_reaching_into_the_range_is_found_and_one_ending_before_it_is_not():
    send(register(), "s1", start_ms=T0_MS, windows=4)
    (run_gpu,) = RunGpu.objects.all()
    assert reach_back_ms([run_gpu.pk], T0_MS + 1_250) == T0_MS + 1_000
    assert firsts([run_gpu.pk], TimeRange(T0_MS + 1_250, T0_MS + 2_000)) == [T0_MS + 1_000, T0_MS + 2_000]
    # Between two windows (the last reading at +1900, the next at +2000) nothing reaches back.
    assert reach_back_ms([run_gpu.pk], T0_MS + 1_950) == T0_MS + 1_950
    assert firsts([run_gpu.pk], TimeRange(T0_MS + 1_950, T0_MS + 1_999)) == []


def test_each_stream_recording_the_gpu_at_once_has_its_straddling_window_found():
    node = register()
    send(node, "a", start_ms=T0_MS, windows=4)
    send(node, "b", start_ms=T0_MS + 650, windows=4)  # windows at +650, +1650, ...
    (run_gpu,) = RunGpu.objects.all()
    # From +1700: a's window from +1000 and b's from +1650 both reach into the range.
    assert reach_back_ms([run_gpu.pk], T0_MS + 1_700) == T0_MS + 1_000
    assert firsts([run_gpu.pk], TimeRange(T0_MS + 1_700, T0_MS + 1_800)) == [T0_MS + 1_000, T0_MS + 1_650]


def test_a_stream_that_ended_before_the_range_is_left_alone():
    node = register()
    send(node, "first-session", start_ms=T0_MS, windows=3)
    send(node, "after-restart", start_ms=T0_MS + 60_000, windows=3)
    (run_gpu,) = RunGpu.objects.all()
    assert reach_back_ms([run_gpu.pk], T0_MS + 61_500) == T0_MS + 61_000
    assert reach_back_ms([run_gpu.pk], T0_MS + 30_000) == T0_MS + 30_000
    assert reach_back_ms([run_gpu.pk], T0_MS + 1_500) == T0_MS + 1_000


def test_the_bound_for_many_gpus_and_streams_is_one_statement(django_assert_num_queries):
    node = register()
    for gpu in range(3):
        send(node, f"s{gpu}", start_ms=T0_MS + 100 * gpu, windows=3, uuid=f"GPU-{gpu}", index=gpu)
    ids = list(RunGpu.objects.values_list("pk", flat=True))
    with django_assert_num_queries(1):
        bound = reach_back_ms(ids, T0_MS + 1_450)
    assert bound == T0_MS + 1_000  # GPU-0's window from +1000; GPU-1's from +1100, GPU-2's from +1200


def test_a_range_from_the_first_instant_reads_from_the_start_without_looking_back(django_assert_num_queries):
    send(register(), "s1", start_ms=T0_MS, windows=2)
    (run_gpu,) = RunGpu.objects.all()
    with django_assert_num_queries(1):
        assert len(firsts([run_gpu.pk], TimeRange(0, T0_MS + 5_000))) == 2

"""Chart series are aggregated in the database, and agree with bucketing every decoded sample in Python."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard.runs import series
from dashboard.runs.downsample import bucket_samples
from dashboard.telemetry import columns, ingest
from dashboard.telemetry.models import GpuMinute, RunGpu, SampleWindow
from dashboard.telemetry.windows import TimeRange
from tests.factories import T0_MS, register, simple_batch

pytestmark = pytest.mark.django_db


def stream(gpus: int, minutes: int, *, node_name: str = "node-a") -> list[RunGpu]:
    node = register(node_name, "vision")
    for seq in range(minutes):
        for gpu in range(gpus):
            ingest.ingest_batch(simple_batch(node, seq=seq, run="r", uuid=f"GPU-{gpu}", stream=f"s{gpu}", index=gpu,
                                             samples=600, step_mj=25_000 + 1_000 * gpu))
    return list(RunGpu.objects.order_by("gpu__index"))


def decoded(run_gpu: RunGpu) -> columns.WindowArrays:
    arrays = [columns.decode_window(w) for w in SampleWindow.objects.filter(run_gpu=run_gpu).order_by("first_ms")]
    return columns.WindowArrays(*(np.concatenate([getattr(a, f) for a in arrays])
                                  for f in columns.WindowArrays.__dataclass_fields__))


def test_raw_buckets_equal_bucketing_every_sample_in_python():
    (run_gpu,) = stream(1, 5)
    span = TimeRange(T0_MS + 30_000, T0_MS + 150_000)
    got = series.gpu_buckets([run_gpu.pk], span, points=100)[run_gpu.pk].metrics["power_w"]
    arrays = decoded(run_gpu)
    keep = (arrays.t_ms >= span.from_ms) & (arrays.t_ms <= span.to_ms)
    width = series.resolution(span, 100).width_ms
    expected = bucket_samples(arrays.t_ms[keep], arrays.power_mw[keep] / 1000.0, span.from_ms, width)
    assert np.array_equal(got.t_ms, expected.t_ms)
    assert np.allclose(got.mean, expected.mean) and np.allclose(got.high, expected.high)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="compares the PostgreSQL path with the portable one")
def test_the_postgres_path_reads_the_same_samples_as_the_portable_one():
    gpus = stream(2, 3)
    ids = [rg.pk for rg in gpus]
    span = TimeRange(T0_MS + 1_050, T0_MS + 3 * 60_000)  # from inside the first windows
    fast = series._raw_postgres(ids, span, ["power_mw", "temp_c"])
    plain = series._raw_portable(ids, span, ["power_mw", "temp_c"])
    for run_gpu_id in ids:
        assert np.array_equal(fast[run_gpu_id].t_ms, plain[run_gpu_id].t_ms)
        assert np.array_equal(fast[run_gpu_id].values["power_mw"], plain[run_gpu_id].values["power_mw"])
        assert np.array_equal(fast[run_gpu_id].window_energy_j, plain[run_gpu_id].window_energy_j)


def test_minute_buckets_equal_the_rollups_they_merge():
    (run_gpu,) = stream(1, 30)
    span = series.span_of([run_gpu])
    found = series.gpu_buckets([run_gpu.pk], span, points=10)[run_gpu.pk]
    assert series.resolution(span, 10).from_minutes
    minutes = GpuMinute.objects.filter(run_gpu=run_gpu)
    assert found.energy_j.sum() == pytest.approx(sum(m.energy_j for m in minutes))
    assert found.energy_j.sum() == pytest.approx(run_gpu.energy_j)
    power = found.metrics["power_w"]
    assert power.mean.size <= 10
    assert power.high.max() == pytest.approx(max(m.power_max_w for m in minutes))


def test_energy_buckets_of_a_whole_run_add_up_to_its_total_at_any_resolution():
    gpus = stream(2, 4)
    span = series.span_of(gpus)
    for points in (20, 500, 2000):
        found = series.gpu_buckets([rg.pk for rg in gpus], span, ("power_w",), points=points)
        for rg in gpus:
            assert found[rg.pk].energy_j.sum() == pytest.approx(rg.energy_j)


def test_cumulative_curves_start_at_zero_and_end_at_each_groups_total():
    axis, curves = series.cumulative(
        0, {"a": [np.array([10, 20]), np.array([20])], "b": [np.array([30])]},
        {"a": [np.array([1.0, 2.0]), np.array([4.0])], "b": [np.array([8.0])]},
    )
    assert list(axis) == [0, 10, 20, 30]
    assert list(curves["a"]) == [0.0, 1.0, 7.0, 7.0] and list(curves["b"]) == [0.0, 0.0, 0.0, 8.0]


def test_reading_many_gpus_costs_a_fixed_number_of_queries(django_assert_max_num_queries):
    gpus = stream(6, 2)
    span = series.span_of(gpus)
    # The raw horizon (dashboard.telemetry.retention), then the windows: however many GPUs.
    with django_assert_max_num_queries(3):
        found = series.gpu_buckets([rg.pk for rg in gpus], span, ("power_w",), points=50)
    assert len(found) == 6


@pytest.mark.parametrize("points", [1, 7, 119, 120, 121, 600, 2000])
@pytest.mark.parametrize("start_s", [0, 1, 59])
def test_a_span_never_gets_more_buckets_than_points_asked_for(points, start_s):
    start = T0_MS + start_s * 1000
    for width_min in (1, 30, 120, 24 * 60):
        span = TimeRange(start, start + width_min * 60_000)
        res = series.resolution(span, points)
        buckets = (span.to_ms - res.start_ms) // res.width_ms + 1
        assert buckets <= max(points, 1), (points, width_min, res)


def ten_second_windows(gpus: int, windows: int) -> list[RunGpu]:
    node = register("node-a", "vision")
    for seq in range(windows):
        for gpu in range(gpus):
            ingest.ingest_batch(simple_batch(node, seq=seq, run="r", uuid=f"GPU-{gpu}", stream=f"s{gpu}", index=gpu,
                                             samples=100, step_mj=25_000 + 1_000 * gpu))
    return list(RunGpu.objects.order_by("gpu__index"))


def test_a_short_runs_power_is_drawn_from_its_windows_without_decoding_a_sample():
    """The run page's power chart of a run too short for minute rollups reads the windows' own columns."""
    gpus = ten_second_windows(2, 60)  # ten minutes of 10 s windows
    span = series.span_of(gpus)
    ids = [rg.pk for rg in gpus]
    with CaptureQueriesContext(connection) as queries:
        found = series.gpu_buckets(ids, span, ("power_w",), points=40)  # 15 s buckets
    assert not any(blob in q["sql"] for q in queries.captured_queries for blob in ("power_mw", "t_offset_ms"))
    res = series.resolution(span, 40)
    assert not res.from_minutes
    samples = series._raw_buckets(ids, span, res, ("power_w",))
    for gpu, run_gpu in enumerate(gpus):
        drawn = found[run_gpu.pk]
        assert drawn.from_windows
        # Each window's energy over its time: the counter rises (25 + gpu) J every 100 ms.
        assert np.allclose(drawn.metrics["power_w"].mean, 250.0 + 10.0 * gpu)
        assert np.allclose(drawn.metrics["power_w"].low, 250.0 + 10.0 * gpu)
        # Energy is counted where the sample path counts it.
        assert np.array_equal(drawn.energy_t_ms, samples[run_gpu.pk].energy_t_ms)
        assert np.allclose(drawn.energy_j, samples[run_gpu.pk].energy_j)
        assert np.isclose(drawn.energy_j.sum(), RunGpu.objects.get(pk=run_gpu.pk).energy_j)


def test_buckets_narrower_than_the_windows_are_drawn_from_the_samples():
    gpus = ten_second_windows(1, 60)
    found = series.gpu_buckets([gpus[0].pk], series.span_of(gpus), ("power_w",), points=100)  # 6 s buckets
    assert not found[gpus[0].pk].from_windows
    assert np.allclose(found[gpus[0].pk].metrics["power_w"].mean, 300.0)  # the readings' 300 W


def test_a_picked_ranges_energy_from_windows_leaves_out_a_window_ending_after_it():
    """The per-window path counts energy where the sample path does: not a window that ends past the range."""
    gpus = ten_second_windows(1, 60)
    whole = series.span_of(gpus)
    span = TimeRange(whole.from_ms, whole.from_ms + 5 * 60_000 + 5_000)  # ends in the middle of a window
    res = series.resolution(span, 20)
    drawn = series.gpu_buckets([gpus[0].pk], span, ("power_w",), points=20)[gpus[0].pk]
    assert drawn.from_windows and res.width_ms >= series.WINDOW_BUCKET_MIN_MS
    samples = series._raw_buckets([gpus[0].pk], span, res, ("power_w",))[gpus[0].pk]
    assert np.isclose(drawn.energy_j.sum(), samples.energy_j.sum())

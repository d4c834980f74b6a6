"""A GPU's readings through the API: time ranges, cursor pages that visit every stored sample exactly
once, and downsampled buckets that never exceed the points asked for."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dashboard.telemetry import ingest
from dashboard.telemetry.models import RunGpu
from tests.api_world import BATCHES, SAMPLES_PER_BATCH
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, register

pytestmark = pytest.mark.django_db

SAMPLE_FIELDS = ("t_ms", "energy_mj", "power_mw", "sm_clock_mhz", "util_pct", "temp_c")


def varied_batch(node, *, seq: int, stream: str = "s1", samples: int = SAMPLES_PER_BATCH, run: str = "varied",
                 uuid: str = "GPU-V", step_ms: int = 100):
    """A batch whose power climbs 1 W per reading, so buckets have distinct min, mean and max."""
    t0 = T0_MS + seq * samples * step_ms
    t_ms = [t0 + step_ms * i for i in range(samples)]
    energy = [1_000_000 + 30_000 * (seq * samples + i) for i in range(samples)]
    power = [100_000 + 1_000 * (seq * samples + i) for i in range(samples)]
    prev = (t0 - step_ms, energy[0] - 30_000) if seq else None
    entry = gpu_entry(uuid, t_ms, energy, power_mw=power, prev=prev)
    return envelope(node, batch_payload([entry], run=run, seq=seq, stream=stream)), entry


def walk(api, path: str, **params) -> tuple[dict[str, list[int]], int]:
    """Follow next_cursor to the end; returns every column concatenated and the number of pages."""
    columns: dict[str, list[int]] = {name: [] for name in SAMPLE_FIELDS}
    pages, cursor = 0, None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = api.get(path, **query)
        assert response.status_code == 200, response.content
        page = response.json()
        assert page["count"] == len(page["t_ms"]) <= params.get("limit", 1000)
        for name in SAMPLE_FIELDS:
            columns[name] += page[name]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return columns, pages
        assert pages < 10_000


def rows(columns: dict[str, list[int]]) -> list[tuple[int, ...]]:
    return list(zip(*(columns[name] for name in SAMPLE_FIELDS), strict=True))


@pytest.fixture
def varied(api_world):
    """A run of one GPU streamed twice over the same seconds (two agent sessions at once), so equal
    timestamps occur and pages must still visit every sample once."""
    node = register("node-v", "vision")
    sent = []
    for stream, batches in (("s1", 6), ("s2", 3)):
        for seq in range(batches):
            message, entry = varied_batch(node, seq=seq, stream=stream)
            assert ingest.ingest_batch(message).status == "stored"
            sent += list(zip(*(entry[name] for name in SAMPLE_FIELDS), strict=True))
    run_gpu = RunGpu.objects.get(run__name="varied")
    return run_gpu, sent


def samples_path(run_gpu: RunGpu) -> str:
    return f"/runs/{run_gpu.run_id}/gpus/{run_gpu.pk}/samples"


@pytest.mark.parametrize("limit", [3, 7, 50, 120, 10_000])
def test_pages_visit_every_ingested_sample_exactly_once(api_world, varied, limit):
    run_gpu, sent = varied
    columns, pages = walk(api_world.api, samples_path(run_gpu), limit=limit)
    assert Counter(rows(columns)) == Counter(sent)
    assert len(rows(columns)) == len(sent) == 450
    assert columns["t_ms"] == sorted(columns["t_ms"])
    assert pages == -(-len(sent) // limit)


def test_one_sample_pages_step_through_equal_timestamps_across_a_window_boundary(api_world, varied):
    run_gpu, sent = varied
    from_ms, to_ms = T0_MS + 4_800, T0_MS + 5_300  # both streams, each crossing from window 0 to 1
    columns, pages = walk(api_world.api, samples_path(run_gpu), from_ms=from_ms, to_ms=to_ms, limit=1)
    expected = [row for row in sent if from_ms <= row[0] <= to_ms]
    assert len(expected) == 12 and pages == 12
    assert Counter(rows(columns)) == Counter(expected)


def test_a_time_range_returns_exactly_the_samples_inside_it_bounds_included(api_world, varied):
    run_gpu, sent = varied
    from_ms, to_ms = T0_MS + 4_950, T0_MS + 17_300  # mid-window on both ends
    columns, _ = walk(api_world.api, samples_path(run_gpu), from_ms=from_ms, to_ms=to_ms, limit=33)
    expected = [row for row in sent if from_ms <= row[0] <= to_ms]
    assert Counter(rows(columns)) == Counter(expected)
    assert min(columns["t_ms"]) == T0_MS + 5_000 and max(columns["t_ms"]) == to_ms


def test_a_range_holding_no_samples_is_an_empty_last_page(api_world):
    page = api_world.api.get(samples_path(api_world.gpu), from_ms=T0_MS - 10_000, to_ms=T0_MS - 1).json()
    assert (page["count"], page["t_ms"], page["next_cursor"]) == (0, [], None)


def test_samples_come_back_in_the_agents_units_unchanged(api_world):
    page = api_world.api.get(samples_path(api_world.gpu), limit=3).json()
    assert page["t_ms"] == [T0_MS, T0_MS + 100, T0_MS + 200]
    assert page["energy_mj"] == [1_000_000, 1_030_000, 1_060_000]
    assert page["power_mw"] == [300_000] * 3
    assert (page["sm_clock_mhz"], page["util_pct"], page["temp_c"]) == ([1980] * 3, [90] * 3, [60] * 3)
    assert page["from_ms"] == T0_MS and page["to_ms"] == T0_MS + (BATCHES * SAMPLES_PER_BATCH - 1) * 100


def test_an_inverted_time_range_is_a_400(api_world):
    for path in (samples_path(api_world.gpu), samples_path(api_world.gpu) + "/buckets"):
        response = api_world.api.get(path, from_ms=T0_MS + 1, to_ms=T0_MS)
        assert response.status_code == 400
        assert "from_ms" in response.json()["detail"]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 10_001}, {"limit": "ten"}, {"from_ms": -1}, {"to_ms": "noon"},
     {"from_ms": 10**20}, {"cursor": "garbage"}, {"cursor": "1.2"}, {"cursor": "1.2.3\x00"}],
)
def test_malformed_parameters_are_a_400_naming_the_parameter(api_world, params):
    response = api_world.api.get(samples_path(api_world.gpu), **params)
    assert response.status_code == 400
    body = response.json()
    assert next(iter(params)) in body["detail"]


def test_buckets_never_outnumber_the_points_asked_for(api_world, varied):
    run_gpu, sent = varied
    for points in (1, 2, 3, 7, 64, 449, 5_000):
        body = api_world.api.get(samples_path(run_gpu) + "/buckets", points=points).json()
        assert 1 <= len(body["t_ms"]) <= points
        assert body["source"] == "samples"
        for metric in ("power_w", "sm_clock_mhz", "util_pct", "temp_c"):
            assert len(body[metric]["mean"]) == len(body[metric]["min"]) == len(body[metric]["max"]) == len(body["t_ms"])
        power = body["power_w"]
        assert min(power["min"]) == min(row[2] for row in sent) / 1000
        assert max(power["max"]) == max(row[2] for row in sent) / 1000


def test_one_bucket_holds_the_mean_of_every_sample_in_the_range(api_world, varied):
    run_gpu, sent = varied
    from_ms, to_ms = T0_MS + 1_000, T0_MS + 9_000
    body = api_world.api.get(samples_path(run_gpu) + "/buckets", points=1, from_ms=from_ms, to_ms=to_ms).json()
    inside = [row[2] / 1000 for row in sent if from_ms <= row[0] <= to_ms]
    assert body["t_ms"] == [from_ms]
    assert body["power_w"]["mean"] == [pytest.approx(np.mean(inside))]
    assert body["power_w"]["min"] == [min(inside)] and body["power_w"]["max"] == [max(inside)]


def test_buckets_of_long_spans_come_from_minute_rollups(api_world):
    node = register("node-long", "vision")
    for seq in (0, 36, 72):  # windows an hour apart: a two-hour span
        message, _ = varied_batch(node, seq=seq, run="long", uuid="GPU-L", step_ms=2_000)
        assert ingest.ingest_batch(message).status == "stored"
    run_gpu = RunGpu.objects.get(run__name="long")
    body = api_world.api.get(samples_path(run_gpu) + "/buckets", points=10).json()
    assert body["source"] == "minutes"
    assert body["bucket_ms"] % 60_000 == 0
    assert 1 <= len(body["t_ms"]) <= 10
    assert max(body["power_w"]["max"]) == (100_000 + 1_000 * (72 * 50 + 49)) / 1000

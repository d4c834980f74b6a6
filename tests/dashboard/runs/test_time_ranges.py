"""The run and GPU pages draw the picked time range (15 min, 1 h, 6 h, 24 h, all, custom), kept in the URL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from dashboard.runs.ranges import ALL, CUSTOM, BadRange, RangeChoice, parse_choice, parse_time_range
from dashboard.telemetry import ingest
from dashboard.telemetry.models import Run, RunGpu, SampleWindow
from dashboard.telemetry.windows import ALL_TIME, TimeRange
from tests.dashboard.runs.test_run_pages import figures_in, j_per_unit, values
from tests.factories import T0_MS, member, register, simple_batch

MINUTE_MS = 60_000


def test_no_parameters_mean_the_whole_run():
    assert parse_choice({}) == RangeChoice(ALL)


def test_relative_ranges_are_recognised():
    for key in ("15m", "1h", "6h", "24h", "all"):
        assert parse_choice({"range": key}).key == key


def test_a_custom_range_takes_iso_times_or_epoch_milliseconds():
    nine = round(datetime(2026, 11, 22, 9, tzinfo=UTC).timestamp() * 1000)
    picked = parse_choice({"from": "2026-11-22T09:00:00Z", "to": str(nine + 3_600_000)})
    assert picked == RangeChoice(CUSTOM, TimeRange(nine, nine + 3_600_000))


def test_a_time_without_an_offset_is_utc():
    picked = parse_choice({"from": "2026-11-22T09:00", "to": "2026-11-22T10:00"})
    assert picked.custom is not None and picked.custom.to_ms - picked.custom.from_ms == 3_600_000
    assert picked.query() == {"from": "2026-11-22T09:00:00", "to": "2026-11-22T10:00:00"}


def test_a_custom_range_with_milliseconds_selects_the_same_range_again():
    picked = parse_choice({"from": str(T0_MS + 1_250), "to": str(T0_MS + 2_000)})
    assert parse_choice(picked.query()) == picked
    assert picked.label == "2026-01-01T00:00:01.250 → 2026-01-01T00:00:02 UTC"


def test_the_pages_to_is_inclusive_and_the_exports_exclusive():
    params = {"from": str(T0_MS), "to": str(T0_MS + 1_000)}
    assert parse_time_range(params) == TimeRange(T0_MS, T0_MS + 1_000)
    assert parse_time_range(params, to_exclusive=True) == TimeRange(T0_MS, T0_MS + 999)


def test_a_missing_end_leaves_that_end_open():
    assert parse_time_range({}) == ALL_TIME
    assert parse_time_range({"from": str(T0_MS)}) == TimeRange(T0_MS, ALL_TIME.to_ms)
    assert parse_time_range({"to": str(T0_MS)}, to_exclusive=True) == TimeRange(ALL_TIME.from_ms, T0_MS - 1)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-11-22T10:00", "to": "2026-11-22T09:00"}, "must be before"),
        ({"from": "2026-11-22T10:00", "to": "2026-11-22T10:00"}, "must be before"),
        ({"from": "yesterday", "to": "2026-11-22T09:00"}, "is not a time"),
        ({"from": "2026-11-22T10:00"}, "needs both"),
        ({"range": "3w"}, "unknown range"),
    ],
)
def test_bad_ranges_say_what_is_wrong(params, message):
    with pytest.raises(BadRange, match=message):
        parse_choice(params)


def test_a_finished_runs_last_hour_is_its_own_last_hour():
    drawn = RangeChoice("1h").resolve(TimeRange(0, 10 * 3_600_000), live=False, now_ms=99 * 3_600_000)
    assert drawn == TimeRange(9 * 3_600_000, 10 * 3_600_000)


def test_a_streaming_runs_last_15_minutes_end_now():
    drawn = RangeChoice("15m").resolve(TimeRange(0, 3_600_000), live=True, now_ms=3_600_000 + 5 * MINUTE_MS)
    assert drawn == TimeRange(3_600_000 - 10 * MINUTE_MS, 3_600_000)


def test_a_custom_range_is_clipped_to_the_data_and_one_beside_it_is_empty():
    data = TimeRange(T0_MS, T0_MS + 60 * MINUTE_MS)
    wide = RangeChoice(CUSTOM, TimeRange(T0_MS - MINUTE_MS, T0_MS + 90 * MINUTE_MS))
    assert wide.resolve(data, live=False, now_ms=0) == data
    before = RangeChoice(CUSTOM, TimeRange(T0_MS - 2 * MINUTE_MS, T0_MS - MINUTE_MS))
    assert before.resolve(data, live=False, now_ms=0).empty


@pytest.fixture
def long_run(db, client):
    """One GPU, 40 one-minute batches at 10 Hz."""
    node = register("node-a", "vision")
    for seq in range(40):
        ingest.ingest_batch(simple_batch(node, seq=seq, run="long", samples=600))
    client.force_login(member("ana", "vision"))
    run = Run.objects.get()
    run.status = Run.Status.FINISHED
    run.save()
    return run


def power_times_ms(html: str) -> list[int]:
    """Bucket starts of the first power trace (epoch ms on a date axis)."""
    return [int(t) for t in values(figures_in(html)["chart-power"]["data"][0]["x"])]


def test_the_last_15_minutes_draw_only_those_minutes(client, long_run):
    html = client.get(reverse("run", args=[long_run.pk]), {"range": "15m"}).content.decode()
    times = power_times_ms(html)
    last_ms = T0_MS + 40 * MINUTE_MS - 100
    assert min(times) >= last_ms - 15 * MINUTE_MS - MINUTE_MS
    assert max(times) <= last_ms
    assert 'class="range current" data-range="15m"' in html


def test_energy_in_range_counts_the_windows_that_end_inside_it(client, long_run):
    run_gpu = RunGpu.objects.get()
    from_ms, to_ms = T0_MS + 10 * MINUTE_MS, T0_MS + 20 * MINUTE_MS
    html = client.get(reverse("run", args=[long_run.pk]), {"from": str(from_ms), "to": str(to_ms)}).content.decode()
    expected_j = sum(SampleWindow.objects.filter(run_gpu=run_gpu, last_ms__gt=from_ms, last_ms__lte=to_ms)
                     .values_list("energy_j", flat=True))
    figures = figures_in(html)
    bars = figures["chart-energy-per-gpu"]["data"][0]["y"]
    assert values(bars)[0] * j_per_unit(figures["chart-energy-per-gpu"]) == pytest.approx(expected_j)
    assert 'id="card-range-energy"' in html
    # The whole-run card still shows the whole run.
    assert expected_j < run_gpu.energy_j


def test_the_whole_run_range_shows_the_stored_totals(client, long_run):
    figures = figures_in(client.get(reverse("run", args=[long_run.pk])).content.decode())
    top = values(figures["chart-cumulative"]["data"][-1]["y"])
    assert top[-1] * j_per_unit(figures["chart-cumulative"]) == pytest.approx(RunGpu.objects.get().energy_j)


def test_an_inverted_range_is_a_400_with_the_reason(client, long_run):
    response = client.get(reverse("run", args=[long_run.pk]), {"from": "2026-01-02", "to": "2026-01-01"})
    assert response.status_code == 400
    assert "must be before" in response.content.decode()


def test_an_unknown_range_on_the_gpu_page_is_a_400(client, long_run):
    run_gpu = RunGpu.objects.get()
    response = client.get(reverse("run_gpu", args=[long_run.pk, run_gpu.pk]), {"range": "forever"})
    assert response.status_code == 400


def test_a_range_outside_the_run_says_there_is_nothing_in_it(client, long_run):
    response = client.get(reverse("run", args=[long_run.pk]), {"from": "2001-01-01", "to": "2001-01-02"})
    html = response.content.decode()
    assert response.status_code == 200
    assert figures_in(html) == {}
    assert "No samples in" in html


def test_the_gpu_page_draws_the_range_at_full_detail(client, long_run):
    run_gpu = RunGpu.objects.get()
    html = client.get(reverse("run_gpu", args=[long_run.pk, run_gpu.pk]), {"range": "15m"}).content.decode()
    figures = figures_in(html)
    assert set(figures) == {"chart-power", "chart-energy", "chart-clock", "chart-util", "chart-temp"}
    # 15 minutes in at most 2,000 buckets: finer than a minute, so read from the raw windows.
    assert len(power_times_ms(html)) > 15


def test_the_samples_download_link_covers_the_drawn_range(client, long_run):
    html = client.get(reverse("run", args=[long_run.pk]), {"range": "15m"}).content.decode()
    last_ms = T0_MS + 40 * MINUTE_MS - 100
    # The href is HTML: its "&" is escaped.
    assert f"samples.csv?from={last_ms - 15 * MINUTE_MS}&amp;to={last_ms + 1}" in html

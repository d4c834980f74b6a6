"""Over a whole run the GPU page's bands are each minute's real extremes, read from the minute rollups."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.urls import reverse

from dashboard.runs import series
from dashboard.telemetry import ingest
from dashboard.telemetry.models import Run, RunGpu
from tests.dashboard.runs.test_run_pages import figures_in, values
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, member, register

pytestmark = pytest.mark.django_db

STEP_MS = 10_000  # one reading every 10 s: three hours in 1,080 readings, six a minute
BATCH_READINGS = 60
HOURS = 3
DIP_AT = 500  # the reading where the clock drops to 345 MHz and utilisation to 0 %


def readings(n: int) -> dict[str, list[int]]:
    """Steady training, temperature alternating 60/70 °C, and one stall."""
    clock = [1980] * n
    util = [95] * n
    clock[DIP_AT], util[DIP_AT] = 345, 0
    return {"sm_clock_mhz": clock, "util_pct": util, "temp_c": [60 + 10 * (i % 2) for i in range(n)]}


def three_hour_run() -> Run:
    node = register("node-a", "vision")
    n = HOURS * 3_600_000 // STEP_MS
    columns = readings(n)
    for seq in range(n // BATCH_READINGS):
        picked = range(seq * BATCH_READINGS, (seq + 1) * BATCH_READINGS)
        t_ms = [T0_MS + STEP_MS * i for i in picked]
        energy = [1_000_000 + 3_000_000 * i for i in picked]
        prev = (t_ms[0] - STEP_MS, energy[0] - 3_000_000) if seq else None
        entry: dict[str, Any] = gpu_entry("GPU-1", t_ms, energy, prev=prev)
        entry.update({name: [values[i] for i in picked] for name, values in columns.items()})
        outcome = ingest.ingest_batch(envelope(node, batch_payload([entry], run="llama", seq=seq)))
        assert outcome.status == "stored", outcome.detail
    return Run.objects.get()


def test_a_dip_to_345_mhz_and_0_percent_shows_in_the_bands_over_the_whole_run(client):
    run = three_hour_run()
    run_gpu = RunGpu.objects.get(run=run)
    assert series.resolution(series.span_of([run_gpu]), 600).from_minutes  # drawn from the rollups
    client.force_login(member("ana", "vision"))
    figures = figures_in(client.get(reverse("run_gpu", args=[run.pk, run_gpu.pk])).content.decode())

    def traces(chart: str) -> dict[str, np.ndarray]:
        return {trace["name"]: values(trace["y"]) for trace in figures[chart]["data"]}

    clock, util, temp = traces("chart-clock"), traces("chart-util"), traces("chart-temp")
    for drawn in (clock, util, temp):
        assert {"min–max per minute", "mean per minute"} <= set(drawn)
    assert clock["min–max per minute"].min() == 345 and clock["max"].max() == 1980
    assert clock["mean per minute"].min() > 345  # the minute's mean hides the stall; the band shows it
    assert util["min–max per minute"].min() == 0
    assert set(temp["min–max per minute"]) == {60} and set(temp["max"]) == {70}
    assert set(temp["mean per minute"]) == {65}  # a true mean, not the hottest reading

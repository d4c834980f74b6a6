"""Minute rollups keep each minute's real extremes; minutes from before fill them in from their stored windows."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from dashboard.telemetry import ingest
from dashboard.telemetry.models import GpuMinute, SampleWindow
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, register

pytestmark = pytest.mark.django_db

EXTREMES = ("sm_clock_min_mhz", "sm_clock_max_mhz", "util_min_pct", "util_max_pct", "temp_min_c", "temp_sum_c")
fill_from_windows = importlib.import_module("dashboard.telemetry.migrations.0007_minute_extremes").fill_from_windows


def two_minutes_in_four_batches() -> None:
    """Readings every 2 s; each batch (30 s) drops the clock for one reading, a different amount each time."""
    node = register("node-a", "vision")
    for seq in range(4):
        t_ms = [T0_MS + seq * 30_000 + 2_000 * i for i in range(15)]
        energy = [1_000_000 + 500_000 * (seq * 15 + i) for i in range(15)]
        prev = (t_ms[0] - 2_000, energy[0] - 500_000) if seq else None
        entry = gpu_entry("GPU-1", t_ms, energy, prev=prev)
        entry["sm_clock_mhz"] = [1980] * 14 + [1000 - 100 * seq]
        entry["util_pct"] = [50 + seq] * 15
        entry["temp_c"] = [60 + seq] * 15
        assert ingest.ingest_batch(envelope(node, batch_payload([entry], run="r", seq=seq))).status == "stored"


def extremes() -> dict[int, tuple[float | None, ...]]:
    return {m.minute_ms: tuple(getattr(m, c) for c in EXTREMES) for m in GpuMinute.objects.order_by("minute_ms")}


def test_batches_into_one_minute_merge_their_extremes():
    two_minutes_in_four_batches()
    assert extremes() == {
        T0_MS: (900.0, 1980.0, 50.0, 51.0, 60.0, 15 * 60.0 + 15 * 61.0),
        T0_MS + 60_000: (700.0, 1980.0, 52.0, 53.0, 62.0, 15 * 62.0 + 15 * 63.0),
    }


def test_the_migration_fills_minutes_whose_windows_are_all_there_and_leaves_the_others_null():
    two_minutes_in_four_batches()
    stored = extremes()
    GpuMinute.objects.update(**dict.fromkeys(EXTREMES))
    SampleWindow.objects.filter(seq=3).delete()  # half of the second minute's samples are gone

    fill_from_windows(apps, None)

    assert extremes() == {T0_MS: stored[T0_MS], T0_MS + 60_000: (None,) * len(EXTREMES)}

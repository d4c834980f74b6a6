"""Minute rollups keep each minute's real extremes; minutes from before fill them in from their stored windows."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dashboard.telemetry import ingest
from dashboard.telemetry.columns import decode_window
from dashboard.telemetry.models import GpuMinute, SampleWindow
from tests.dashboard.test_migrations_keep_data import own_schema
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, register

pytestmark = pytest.mark.django_db

EXTREMES = ("sm_clock_min_mhz", "sm_clock_max_mhz", "util_min_pct", "util_max_pct", "temp_min_c", "temp_sum_c")
# The windows' raw columns as migration 0007 reads them (before 0012_encoded_windows encoded them).
RAW_DTYPES = {"t_offset_ms": "<u4", "energy_mj": "<i8", "power_mw": "<i4", "sm_clock_mhz": "<i2", "util_pct": "<i2",
              "temp_c": "<i2"}
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


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres")
def test_the_migration_fills_minutes_whose_windows_are_all_there_and_leaves_the_others_null():
    """Run on the schema it was written for (telemetry 0007: windows as raw columns), in a schema of its own."""
    two_minutes_in_four_batches()
    stored = extremes()
    windows = [(w.seq, w.first_ms, w.last_ms, w.samples, w.energy_j, decode_window(w))
               for w in SampleWindow.objects.order_by("seq")]
    minutes = list(GpuMinute.objects.order_by("minute_ms").values(
        "minute_ms", "samples", "energy_j", "power_sum_w", "power_min_w", "power_max_w", "sm_clock_sum_mhz",
        "util_sum_pct", "temp_max_c"))
    with own_schema("minute_extremes"):
        executor = MigrationExecutor(connection)
        executor.migrate([("telemetry", "0007_minute_extremes")])
        old = executor.loader.project_state([("telemetry", "0007_minute_extremes")]).apps
        project = old.get_model("projects", "Project").objects.create(name="vision")
        node = old.get_model("telemetry", "Node").objects.create(project=project, name="node-a")
        gpu = old.get_model("telemetry", "Gpu").objects.create(node=node, uuid="GPU-1", index=0)
        run = old.get_model("telemetry", "Run").objects.create(project=project, name="r")
        run_gpu = old.get_model("telemetry", "RunGpu").objects.create(run=run, gpu=gpu)
        for seq, first_ms, last_ms, samples, energy_j, arrays in windows:
            if seq == 3:
                continue  # half of the second minute's samples are gone
            raw = {"t_offset_ms": arrays.t_ms - first_ms, **{n: getattr(arrays, n) for n in RAW_DTYPES if n != "t_offset_ms"}}
            old.get_model("telemetry", "SampleWindow").objects.create(
                run_gpu=run_gpu, stream="s", seq=seq, first_ms=first_ms, last_ms=last_ms, samples=samples,
                energy_j=energy_j, **{n: np.asarray(raw[n], dtype).tobytes() for n, dtype in RAW_DTYPES.items()},
            )
        OldMinute = old.get_model("telemetry", "GpuMinute")
        OldMinute.objects.bulk_create([OldMinute(run_gpu=run_gpu, **minute) for minute in minutes])

        fill_from_windows(old, None)

        filled = {m.minute_ms: tuple(getattr(m, c) for c in EXTREMES) for m in OldMinute.objects.order_by("minute_ms")}
    assert filled == {T0_MS: stored[T0_MS], T0_MS + 60_000: (None,) * len(EXTREMES)}

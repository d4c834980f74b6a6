"""Migration telemetry 0011 encodes every stored window's six raw columns into one blob, and migrating back
unpacks them into the very bytes they held (in a PostgreSQL schema of its own: see test_migrations_keep_data)."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dashboard.telemetry import columns
from tests.dashboard.test_migrations_keep_data import own_schema

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.usefixtures("postgres")]

BEFORE = [("telemetry", "0011_plan_marker_index")]
AFTER = [("telemetry", "0012_encoded_windows")]
RAW = ("t_offset_ms", "energy_mj", "power_mw", "sm_clock_mhz", "util_pct", "temp_c")
T0_MS = 1_767_225_600_000


def raw_window(seed: int, n: int) -> dict[str, np.ndarray]:
    """A window's columns at their old stored widths, with extremes of each column's range among them."""
    rng = np.random.default_rng(seed)
    return {
        "t_offset_ms": np.cumsum(rng.integers(1, 200, n)).astype("<u4") - 1,
        "energy_mj": np.append(2**63 - 1 - rng.integers(0, 10**6, n - 1), 5).astype("<i8"),  # wraps at the end
        "power_mw": rng.integers(0, 2**31 - 1, n).astype("<i4"),
        "sm_clock_mhz": rng.integers(0, 2**15 - 1, n).astype("<i2"),
        "util_pct": rng.integers(0, 101, n).astype("<i2"),
        "temp_c": rng.integers(-(2**15), 2**15 - 1, n).astype("<i2"),
    }


def migrate(targets: list[tuple[str, str]]):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def stored(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def test_windows_are_encoded_and_migrating_back_gives_their_raw_bytes_again():
    with own_schema("encoded_windows"):
        apps = migrate(BEFORE)
        project = apps.get_model("projects", "Project").objects.create(name="vision")
        node = apps.get_model("telemetry", "Node").objects.create(project=project, name="n1")
        gpu = apps.get_model("telemetry", "Gpu").objects.create(node=node, uuid="GPU-0", index=0)
        run = apps.get_model("telemetry", "Run").objects.create(project=project, name="r")
        run_gpu = apps.get_model("telemetry", "RunGpu").objects.create(run=run, gpu=gpu)
        windows = {seq: raw_window(seq, n) for seq, n in enumerate((1, 50, 50, 7))}
        for seq, raw in windows.items():
            apps.get_model("telemetry", "SampleWindow").objects.create(
                run_gpu=run_gpu, stream="s", seq=seq, first_ms=T0_MS + seq * 5000, last_ms=T0_MS + seq * 5000 + 1,
                samples=len(raw["t_offset_ms"]), energy_j=0.0, **{name: values.tobytes() for name, values in raw.items()},
            )

        migrate(AFTER)
        for seq, blob in stored("SELECT seq, readings FROM dashboard_samplewindow"):
            decoded = columns.decode(blob)
            for name in RAW:
                np.testing.assert_array_equal(decoded[name], windows[seq][name])

        migrate(BEFORE)
        rows = stored(f"SELECT seq, {', '.join(RAW)} FROM dashboard_samplewindow")
        assert len(rows) == len(windows)
        for seq, *blobs in rows:
            assert [bytes(blob) for blob in blobs] == [windows[seq][name].tobytes() for name in RAW]

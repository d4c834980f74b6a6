"""Builders for the carbon tests: agent messages that put known energy into known UTC hours, grid-intensity
files, and the recompute the tasks do when a run closes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dashboard.telemetry import ingest
from dashboard.telemetry.models import Run
from planner.carbon import tasks
from planner.carbon.models import ImportedRun, IntensityImport, IntensityRow
from planner.units import J_PER_KWH, MS_PER_HOUR, MS_PER_S
from tests.factories import T0_MS, RegisteredNode, batch_payload, envelope, gpu_entry

T0 = datetime.fromtimestamp(T0_MS / MS_PER_S, tz=UTC)  # 2026-01-01T00:00Z
HOUR_MS = MS_PER_HOUR

EM_HEADER_NEW = (
    "Datetime (UTC),Country,Zone name,Zone id,Carbon intensity gCO₂eq/kWh (direct),"
    "Carbon intensity gCO₂eq/kWh (Life cycle),Carbon-free energy percentage (CFE%),"
    "Renewable energy percentage (RE%),Data source,Data estimated,Data estimation method"
)
EM_HEADER_OLD = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
    "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,"
    "Data Estimated,Data Estimation Method"
)


def em_hourly_csv(zone: str, start: datetime, lifecycle: Sequence[float], *, header: str = EM_HEADER_NEW,
                  renewable_pct: float = 50.0, cfe_pct: float = 60.0) -> str:
    """An Electricity Maps hourly export: one row per hour from ``start`` (direct = 80 % of lifecycle)."""
    lines = [header]
    for i, value in enumerate(lifecycle):
        when = start + timedelta(hours=i)
        lines.append(f"{when:%Y-%m-%d %H:%M:%S},Country,Zone {zone},{zone},{value * 0.8:.2f},{value:.2f},"
                     f"{cfe_pct},{renewable_pct},test,false,")
    return "\n".join(lines) + "\n"


def open_message(node: RegisteredNode, run: str, stream: str, *, started_ms: int = T0_MS, **extra: Any) -> dict:
    payload = {"run": run, "stream": stream, "started_ms": started_ms, "simulated": False, "backend": "nvml",
               "host": "h", "tags": [], "gpus": [], "agent_version": "test", **extra}
    return envelope(node, payload, kind="open_run")


def close_message(node: RegisteredNode, run: str, stream: str, *, ended_ms: int, last_seq: int, samples: int) -> dict:
    return envelope(node, {"run": run, "stream": stream, "ended_ms": ended_ms, "last_seq": last_seq,
                           "samples_sent": samples}, kind="close_run")


class LiveRun:
    """A run an agent streams on ``node``: each :meth:`hour` sends one batch that uses exactly ``kwh`` per GPU
    in the next UTC hour after ``start_ms`` (readings at :10 s and :50 min), through ingest."""

    def __init__(self, node: RegisteredNode, run: str, *, start_ms: int = T0_MS, gpus: int = 1,
                 zone: str | None = None, region: str | None = None) -> None:
        self.node, self.run, self.start_ms = node, run, start_ms
        self.stream = uuid.uuid4().hex[:12]
        extra = {k: v for k, v in (("zone", zone), ("region", region)) if v}
        assert ingest.open_run(open_message(node, run, self.stream, started_ms=start_ms, **extra)).status == "opened"
        self.counters = [1_000_000_000] * gpus
        self.prev: list[tuple[int, int] | None] = [None] * gpus
        self.hours = self.samples = 0

    def hour(self, kwh: float) -> None:
        h = self.hours
        t_ms = [self.start_ms + h * HOUR_MS + 10_000, self.start_ms + h * HOUR_MS + 50 * 60_000]
        entries = []
        for g, counter in enumerate(self.counters):
            # First reading of the stream counts nothing; afterwards, the step into :10 s is zero energy.
            readings = [counter, counter + round(kwh * J_PER_KWH * 1000)]
            entries.append(gpu_entry(f"GPU-{self.node.name}-{g}", t_ms, readings, index=g, prev=self.prev[g]))
            self.counters[g], self.prev[g] = readings[-1], (t_ms[-1], readings[-1])
            self.samples += 2
        batch = batch_payload(entries, run=self.run, stream=self.stream, seq=h)
        outcome = ingest.ingest_batch(envelope(self.node, batch))
        assert outcome.status == "stored", outcome
        self.hours += 1

    def close(self) -> None:
        ended = self.start_ms + (self.hours - 1) * HOUR_MS + 50 * 60_000
        ingest.close_run(close_message(self.node, self.run, self.stream, ended_ms=ended, last_seq=self.hours - 1,
                                       samples=self.samples))


def stream_hours(
    node: RegisteredNode,
    run: str,
    energy_kwh_by_hour: Sequence[float],
    *,
    start_ms: int = T0_MS,
    gpus: int = 1,
    zone: str | None = None,
    region: str | None = None,
    close: bool = True,
) -> None:
    """Open, stream and close a run on ``node`` that uses exactly ``energy_kwh_by_hour[h]`` per GPU in
    UTC hour ``h`` after ``start_ms`` (one batch per hour, readings at :10 s and :50 min)."""
    live = LiveRun(node, run, start_ms=start_ms, gpus=gpus, zone=zone, region=region)
    for kwh in energy_kwh_by_hour:
        live.hour(kwh)
    if close:
        live.close()


def recompute_figures(*names: str) -> None:
    """What ``carbon.recompute_run`` does when the named runs (default: all) close; a test's on-commit
    callbacks never run, so tests that only stream ask for it here. Pages read, never compute."""
    runs = Run.objects.filter(name__in=names) if names else Run.objects.all()
    for run_id in runs.order_by("pk").values_list("pk", flat=True):
        tasks.recompute_run(run_id)


CORE_FIXTURES = Path(__file__).resolve().parents[1] / "grid_carbon" / "fixtures"


def fixture(name: str) -> bytes:
    return (CORE_FIXTURES / name).read_bytes()


def snapshot() -> tuple[list[tuple], list[tuple], list[tuple]]:
    rows = sorted(IntensityRow.objects.values_list(
        "pk", "zone", "start_utc", "granularity", "basis", "signal", "source", "is_forecast",
        "intensity_g_per_kwh", "renewable_pct", "cfe_pct", "updated_at", "imported_id"))
    imports = sorted(IntensityImport.objects.values_list("pk", "filename", "rows_created"))
    runs = sorted(ImportedRun.objects.values_list("pk", "run_key", "emissions_g", "imported_id"))
    return rows, imports, runs

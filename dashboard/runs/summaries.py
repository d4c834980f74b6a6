"""Run figures as plain data: what the run page's cards, ``run_summary`` and ``summary.json`` show.

Totals come from the per-device running totals, which are sums of counter differences; nothing here is
derived from a downsampled chart series. A GPU that more than one agent stream read at once is counted
once (``dashboard.telemetry.coverage``), and flagged (``overlapped``, ``streams``, ``overlap_s``).

A run's devices are its GPUs and, where the agent read RAPL, its nodes' CPU packages and DRAM
(``Gpu.component``). The run's energy, duration, samples and mean power count every device; what is
named after GPUs (GPU-hours, peak GPU power, the GPU count) counts GPUs only. A run of GPUs alone has
the figures it had before components.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict

from django.db.models import Count, F, FloatField, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Cast, NullIf

from dashboard.telemetry.models import Gpu, Run, RunGpu
from planner.units import J_PER_KWH, MS_PER_HOUR, MS_PER_S


class TotalsColumns(TypedDict):
    """What :func:`with_totals` adds to each run (None while the run has no samples)."""

    energy_j: float | None
    gpu_count: int
    first_ms: int | None
    last_ms: int | None
    samples: int | None
    duration_s: float | None
    mean_power_w: float | None


if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    RunWithTotals = WithAnnotations[Run, TotalsColumns]


def with_totals(runs: QuerySet[Run]) -> QuerySet[RunWithTotals]:
    """Annotate runs with the figures the runs list shows and sorts by."""
    duration_ms = F("last_ms") - F("first_ms")
    return runs.annotate(
        energy_j=Sum("run_gpus__energy_j"),
        gpu_count=Count("run_gpus", filter=Q(run_gpus__gpu__component=Gpu.Component.GPU), distinct=True),
        first_ms=Min("run_gpus__first_ms"),
        last_ms=Max("run_gpus__last_ms"),
        samples=Sum("run_gpus__samples"),
    ).annotate(
        duration_s=Cast(duration_ms, FloatField()) / float(MS_PER_S),
        # Joules per millisecond, times 1000: watts.
        mean_power_w=Cast(F("energy_j"), FloatField()) * float(MS_PER_S) / NullIf(Cast(duration_ms, FloatField()), 0.0),
    )


@dataclass(frozen=True)
class GpuFigures:
    run_gpu_id: int
    uuid: str
    node: str
    index: int
    name: str
    energy_j: float
    samples: int
    mean_power_w: float
    peak_power_w: float
    first_ms: int
    last_ms: int
    estimated: bool
    simulated: bool
    streams: int = 1  # agent streams that read it
    overlap_ms: int = 0  # time more than one stream read it at once; its energy is counted once
    component: str = Gpu.Component.GPU  # a GPU, or a CPU package or its DRAM (RAPL)

    @property
    def overlapped(self) -> bool:
        return self.overlap_ms > 0

    @property
    def is_gpu(self) -> bool:
        return self.component == Gpu.Component.GPU


@dataclass(frozen=True)
class ComponentTotals:
    """One component's share of a run: its energy and how many devices measured it."""

    component: str
    label: str
    energy_j: float
    devices: int

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / J_PER_KWH


@dataclass(frozen=True)
class RunFigures:
    run: Run
    devices: list[GpuFigures]  # every measured device: GPUs, then what else the agents read

    @property
    def gpus(self) -> list[GpuFigures]:
        return [d for d in self.devices if d.is_gpu]

    @property
    def energy_j(self) -> float:
        """Every component's energy: GPUs, CPU packages and DRAM."""
        return sum(g.energy_j for g in self.devices)

    def components(self) -> list[ComponentTotals]:
        """Energy by component, GPU first, for the components the run has."""
        out = []
        for component in Gpu.Component:
            devices = [d for d in self.devices if d.component == component]
            if devices:
                out.append(ComponentTotals(component.value, component.label, sum(d.energy_j for d in devices),
                                           len(devices)))
        return out

    @property
    def has_node_components(self) -> bool:
        """Some energy was measured besides the GPUs' (CPU packages, DRAM)."""
        return any(not d.is_gpu for d in self.devices)

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / J_PER_KWH

    @property
    def samples(self) -> int:
        return sum(g.samples for g in self.devices)

    @property
    def duration_s(self) -> float:
        """Wall-clock span from the first reading of any device to the last reading of any device."""
        if not self.devices:
            return 0.0
        return (max(g.last_ms for g in self.devices) - min(g.first_ms for g in self.devices)) / MS_PER_S

    @property
    def first_at(self) -> datetime | None:
        devices = self.devices
        return datetime.fromtimestamp(min(g.first_ms for g in devices) / MS_PER_S, tz=UTC) if devices else None

    @property
    def last_at(self) -> datetime | None:
        devices = self.devices
        return datetime.fromtimestamp(max(g.last_ms for g in devices) / MS_PER_S, tz=UTC) if devices else None

    @property
    def gpu_hours(self) -> float:
        return sum(g.last_ms - g.first_ms for g in self.gpus) / MS_PER_HOUR

    @property
    def mean_power_w(self) -> float:
        """Mean total draw of the run's devices: energy over wall-clock duration."""
        return self.energy_j / self.duration_s if self.duration_s else 0.0

    @property
    def peak_gpu_power_w(self) -> float:
        return max((g.peak_power_w for g in self.gpus), default=0.0)

    @property
    def estimated(self) -> bool:
        return any(g.estimated for g in self.devices)

    @property
    def overlapped(self) -> bool:
        """Some device was read by more than one agent stream at once (each is still counted once)."""
        return any(g.overlapped for g in self.devices)

    def by_node(self) -> dict[str, dict[str, Any]]:
        """Per node: every component's energy and samples, and how many GPUs."""
        nodes: dict[str, dict[str, Any]] = {}
        for g in self.devices:
            entry = nodes.setdefault(g.node, {"energy_j": 0.0, "gpus": 0, "samples": 0})
            entry["energy_j"] += g.energy_j
            entry["gpus"] += int(g.is_gpu)
            entry["samples"] += g.samples
        return nodes

    @staticmethod
    def _device_json(g: GpuFigures) -> dict[str, Any]:
        return {
            "energy_j": g.energy_j,
            "samples": g.samples,
            "node": g.node,
            "index": g.index,
            "name": g.name,
            "mean_power_w": g.mean_power_w,
            "peak_power_w": g.peak_power_w,
            "estimated": g.estimated,
            "streams": g.streams,
            "overlap_s": g.overlap_ms / MS_PER_S,
        }

    def as_json(self) -> dict[str, Any]:
        run = self.run
        return {
            "run": run.name,
            "project": run.project.name,
            "status": run.status,
            "simulated": run.simulated,
            "tags": [t.name for t in run.tags.all()],
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "ended_at": run.ended_at.isoformat() if run.ended_at else None,
            "energy_j": self.energy_j,
            "energy_kwh": self.energy_kwh,
            "samples": self.samples,
            "duration_s": self.duration_s,
            "gpu_hours": self.gpu_hours,
            "mean_power_w": self.mean_power_w,
            "peak_gpu_power_w": self.peak_gpu_power_w,
            "estimated": self.estimated,
            "overlapped": self.overlapped,
            "gpus": {g.uuid: self._device_json(g) for g in self.gpus},
            # Every device, GPUs included, with the component it measures; and the energy of each component.
            "devices": {g.uuid: {**self._device_json(g), "component": g.component} for g in self.devices},
            "components": {c.component: {"energy_j": c.energy_j, "energy_kwh": c.energy_kwh, "devices": c.devices}
                           for c in self.components()},
            "nodes": self.by_node(),
        }


def run_figures(run: Run, run_gpus: list[RunGpu] | None = None) -> RunFigures:
    """The run's figures; pass ``run_gpus`` (with gpu__node selected) when the caller has them already."""
    if run_gpus is None:
        run_gpus = list(RunGpu.objects.filter(run=run).select_related("gpu__node"))
    gpus = [
        GpuFigures(
            run_gpu_id=rg.pk,
            uuid=rg.gpu.uuid,
            node=rg.gpu.node.name,
            index=rg.gpu.index,
            name=rg.gpu.name,
            energy_j=rg.energy_j,
            samples=rg.samples,
            mean_power_w=rg.mean_power_w,
            peak_power_w=rg.peak_power_w,
            first_ms=rg.first_ms or 0,
            last_ms=rg.last_ms or 0,
            estimated=rg.estimated,
            simulated=rg.gpu.simulated,
            streams=rg.streams,
            overlap_ms=rg.overlap_ms,
            component=rg.gpu.component,
        )
        for rg in run_gpus
    ]
    return RunFigures(run=run, devices=gpus)

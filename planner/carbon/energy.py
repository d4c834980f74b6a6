"""A run's energy per UTC hour, per device, from the per-minute rollups.

Devices are the run's GPUs and, where the agent read RAPL, its nodes' CPU packages and DRAM
(``Gpu.component``): emissions cover every component's energy.

The rollups' energies sum exactly to each GPU's run total (they are the same counter differences), so
grouping them by UTC hour loses nothing. An interval's energy counts in the minute it ends, so an
interval ending on the hour belongs to the next hour: at most one sample period moves, never lost.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db.models import BigIntegerField, ExpressionWrapper, F, Sum

from dashboard.telemetry.models import GpuMinute, Run, RunGpu
from planner.units import MS_PER_HOUR, MS_PER_S


def hour_of_ms(hour_index: int) -> datetime:
    return datetime.fromtimestamp(hour_index * MS_PER_HOUR / MS_PER_S, tz=UTC)


@dataclass
class NodeEnergy:
    """One node's part of a run: energy per hour, and per GPU per hour (same numbers, split)."""

    node_id: int
    node_name: str
    energy_j_by_hour: dict[datetime, float] = field(default_factory=dict)
    gpu_energy_j_by_hour: dict[int, dict[datetime, float]] = field(default_factory=dict)  # run_gpu id → …

    @property
    def energy_j(self) -> float:
        return sum(self.energy_j_by_hour.values())


def run_energy_by_node(run: Run) -> list[NodeEnergy]:
    """Energy per node and UTC hour for ``run`` (nodes ordered by name)."""
    # Integer division of the minute's start (ms) by an hour gives the hour index on both PostgreSQL
    # and SQLite (both divide integers as integers); the database does the grouping.
    hour = ExpressionWrapper(F("minute_ms") / MS_PER_HOUR, output_field=BigIntegerField())
    rows = (
        GpuMinute.objects.filter(run_gpu__run=run)
        .annotate(hour=hour)
        .values("run_gpu_id", "hour")
        .annotate(energy_j=Sum("energy_j"))
        .order_by()
    )
    gpus = {
        rg.pk: rg for rg in RunGpu.objects.filter(run=run).select_related("gpu__node")
    }
    nodes: dict[int, NodeEnergy] = {}
    per_node_hour: dict[int, dict[datetime, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        run_gpu = gpus[row["run_gpu_id"]]
        node = run_gpu.gpu.node
        entry = nodes.setdefault(node.pk, NodeEnergy(node.pk, node.name))
        when = hour_of_ms(int(row["hour"]))
        energy = float(row["energy_j"] or 0.0)
        entry.gpu_energy_j_by_hour.setdefault(run_gpu.pk, {})[when] = energy
        per_node_hour[node.pk][when] += energy
    for node_id, hours in per_node_hour.items():
        nodes[node_id].energy_j_by_hour = dict(sorted(hours.items()))
    return sorted(nodes.values(), key=lambda n: n.node_name)


def run_energy_j(run: Run) -> float:
    """The run's total energy (Σ of the per-device running totals: GPUs, CPU packages, DRAM)."""
    return float(RunGpu.objects.filter(run=run).aggregate(total=Sum("energy_j"))["total"] or 0.0)

"""A run's measured iteration time, from the ``step_end`` markers the agent's torch hooks send.

Per node, the iteration time is the median interval between consecutive steps (the median shrugs off
evaluation and checkpoint pauses). When a node reports a step more than once (several ranks on one
node), the last report of each step counts: the node's step ends when its slowest rank's does. With
data parallelism every pipeline waits for the slowest, so the slowest node's median is the straggler's
iteration time T′.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.db.models import Exists, OuterRef, QuerySet

from dashboard.telemetry.models import Run, RunEvent
from planner.units import MS_PER_S

STEP_END = "step_end"
MIN_INTERVALS = 1
MAX_EVENTS = 100_000
"""The most recent step markers read per run: plenty for a median, bounded for very long runs."""


@dataclass(frozen=True)
class NodeIterations:
    node: str
    intervals: int
    median_s: float


@dataclass(frozen=True)
class MeasuredIterations:
    run: Run
    nodes: tuple[NodeIterations, ...]

    @property
    def straggler(self) -> NodeIterations:
        return max(self.nodes, key=lambda n: n.median_s)

    @property
    def iteration_time_s(self) -> float:
        return self.straggler.median_s


class NoSteps(ValueError):
    """The run has too few step markers to measure an iteration time."""


def _node_intervals(rows: list[tuple[int, object]]) -> np.ndarray:
    """Intervals (ms) between consecutive steps of one node; ``rows`` are (t_ms, step or None), by time."""
    by_step: dict[int, int] = {}
    unnumbered: list[int] = []
    for t_ms, step in rows:
        if isinstance(step, int) and not isinstance(step, bool):
            by_step[step] = max(t_ms, by_step.get(step, t_ms))
        else:
            unnumbered.append(t_ms)
    if len(by_step) >= 2:
        steps = np.array(sorted(by_step), dtype=np.int64)
        ends = np.array([by_step[s] for s in steps], dtype=np.int64)
        consecutive = np.diff(steps) == 1
        return np.diff(ends)[consecutive]
    return np.diff(np.array(sorted(unnumbered), dtype=np.int64))


def measure(run: Run) -> MeasuredIterations:
    """Median iteration time per node of ``run``. Raises :class:`NoSteps` without enough markers."""
    rows = RunEvent.objects.filter(run=run, kind=STEP_END).order_by("-t_ms").values_list("node__name", "t_ms", "data")
    per_node: dict[str, list[tuple[int, object]]] = {}
    for node, t_ms, data in rows[:MAX_EVENTS].iterator(chunk_size=10_000):
        step = data.get("step") if isinstance(data, dict) else None
        per_node.setdefault(node, []).append((t_ms, step))
    for node_rows in per_node.values():
        node_rows.reverse()  # oldest first
    nodes = []
    for node, node_rows in per_node.items():
        intervals = _node_intervals(node_rows)
        intervals = intervals[intervals > 0]
        if len(intervals) >= MIN_INTERVALS:
            nodes.append(NodeIterations(node, len(intervals), float(np.median(intervals)) / MS_PER_S))
    if not nodes:
        raise NoSteps(f"run {run.name!r} has no consecutive step_end markers to measure an iteration time from")
    return MeasuredIterations(run, tuple(nodes))


def runs_with_steps(runs: QuerySet[Run], limit: int = 100) -> list[Run]:
    """The most recent runs (of a queryset) that have step markers."""
    has_steps = Exists(RunEvent.objects.filter(run=OuterRef("pk"), kind=STEP_END))
    return list(runs.filter(has_steps).select_related("project").order_by("-created_at")[:limit])


def measure_runs(runs: list[Run], limit: int = 20) -> list[MeasuredIterations]:
    """The measured iteration times of the first ``limit`` of ``runs``; runs too few markers leave out."""
    measured = []
    for run in runs[:limit]:
        try:
            measured.append(measure(run))
        except NoSteps:
            continue
    return measured

"""What a run measured with a frequency plan: its realised iteration time and energy, from the ``plan``
and ``iteration`` markers the plan client sends (pure functions over the events; no database).

The plan client (``wattwise_agent.plan_client``) sends, on every rank:

- ``plan`` when a plan comes into force (the first iteration too, and on every switch: a straggler):
  ``frontier_id``, ``point``, ``rank``, ``straggler_time_s`` (0 = none), ``reason``, the planner's
  prediction for one iteration (``predicted_time_s``, ``predicted_energy_j``) and at all-max clocks
  (``baseline_time_s``, ``baseline_energy_j``), ``dry_run`` and ``baseline_run`` (the name of the measured
  all-max run to compare with);
- ``iteration`` every iteration: ``rank``, ``step``, ``time_s`` (wall time, waiting included),
  ``energy_j`` (left out when not measured) and ``wait_s``.

A baseline run (all-max clocks, no plan) sends the same ``iteration`` markers. The figures:

- the first :data:`WARMUP_ITERATIONS` iterations of each rank after the run starts and after each ``plan``
  marker are warm-up and are left out;
- a step counts when every rank of the run reported it (after warm-up);
- realised iteration time: the mean over the counted steps of the slowest rank's ``time_s`` (the
  pipeline's iteration ends when its last stage's does);
- realised energy per iteration: the sum over ranks of each rank's mean ``energy_j`` over the counted
  steps (``None`` when some rank measured none).

A plan *interval* is the stretch between one ``plan`` marker and the next (the n-th marker of every
rank); its figures count the steps every rank ran under that plan. A step some ranks ran under one plan
and others under the next (a switch takes up to two iterations) counts for the whole run only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PLAN = "plan"
ITERATION = "iteration"
WARMUP_ITERATIONS = 2
NO_PLAN = -1  # the interval before any plan marker (a baseline run's only one)


@dataclass(frozen=True)
class Event:
    """One stored marker: ``RunEvent``'s ``t_ms``, ``kind`` and ``data``, in stored order."""

    t_ms: int
    kind: str
    data: Mapping[str, Any]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _positive(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and number > 0 else None


@dataclass(frozen=True)
class PlanInForce:
    """What a ``plan`` marker said: the plan and the planner's prediction for it (``None``: not sent)."""

    frontier_id: int | None
    point: int | None
    straggler_time_s: float | None  # None: no straggler (the marker's 0.0)
    reason: str
    predicted_time_s: float | None
    predicted_energy_j: float | None
    baseline_time_s: float | None
    baseline_energy_j: float | None
    dry_run: bool
    baseline_run: str

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PlanInForce:
        reason, baseline_run = data.get("reason"), data.get("baseline_run")
        return cls(
            frontier_id=_int(data.get("frontier_id")), point=_int(data.get("point")),
            straggler_time_s=_positive(data.get("straggler_time_s")),
            reason=reason if isinstance(reason, str) else "",
            predicted_time_s=_positive(data.get("predicted_time_s")),
            predicted_energy_j=_positive(data.get("predicted_energy_j")),
            baseline_time_s=_positive(data.get("baseline_time_s")),
            baseline_energy_j=_positive(data.get("baseline_energy_j")),
            dry_run=bool(data.get("dry_run")),
            baseline_run=baseline_run if isinstance(baseline_run, str) else "",
        )

    @property
    def predicted_saving_fraction(self) -> float | None:
        """P = 1 − predicted energy / predicted all-max energy (0.16: 16 % less per iteration)."""
        if self.predicted_energy_j is None or self.baseline_energy_j is None:
            return None
        return 1.0 - self.predicted_energy_j / self.baseline_energy_j


@dataclass(frozen=True)
class Realised:
    """Measured figures over a set of steps: ``iterations`` steps counted, reported by ``ranks`` ranks."""

    iterations: int = 0
    ranks: int = 0
    time_s: float | None = None
    energy_j: float | None = None


@dataclass(frozen=True)
class Interval:
    """One plan in force (``plan`` None: before any plan marker) and what the run measured under it."""

    index: int  # the n-th plan marker of every rank; NO_PLAN before the first
    plan: PlanInForce | None
    started_ms: int | None  # the first rank's plan marker
    realised: Realised


@dataclass(frozen=True)
class RunRealised:
    whole: Realised
    intervals: tuple[Interval, ...] = ()
    ignored: int = 0  # markers without the fields they need (no rank, step or time)

    @property
    def plans(self) -> tuple[Interval, ...]:
        """The intervals with a plan in force."""
        return tuple(i for i in self.intervals if i.plan is not None)

    def predicted_saving_fraction(self) -> float | None:
        """The plans' predicted saving over the run: their predicted energies weighted by the steps each counted
        (with one plan, that plan's P)."""
        planned = baseline = 0.0
        for interval in self.plans:
            n, plan = interval.realised.iterations, interval.plan
            if not n or plan is None:
                continue
            if plan.predicted_energy_j is None or plan.baseline_energy_j is None:
                return None
            planned += n * plan.predicted_energy_j
            baseline += n * plan.baseline_energy_j
        return 1.0 - planned / baseline if baseline else None

    @property
    def baseline_run(self) -> str:
        """The baseline run the plans name (the last plan's, when they differ); "" if none."""
        return next((i.plan.baseline_run for i in reversed(self.plans) if i.plan and i.plan.baseline_run), "")


@dataclass
class _Rank:
    interval: int = NO_PLAN
    warmup_left: int = WARMUP_ITERATIONS
    # step -> (interval, time_s, energy_j); a step reported twice keeps its last report
    steps: dict[int, tuple[int, float, float | None]] = field(default_factory=dict)
    reported: bool = False


def realised_over(ranks: Mapping[int, Mapping[int, tuple[int, float, float | None]]], steps: Sequence[int]) -> Realised:
    """Time and energy over ``steps``, which every rank of ``ranks`` (rank -> step -> record) reported."""
    if not steps or not ranks:
        return Realised(0, len(ranks))
    time_s = sum(max(records[s][1] for records in ranks.values()) for s in steps) / len(steps)
    energy_j: float | None = 0.0
    for records in ranks.values():
        measured = [records[s][2] for s in steps if records[s][2] is not None]
        if not measured:
            energy_j = None
            break
        energy_j = (energy_j or 0.0) + sum(e for e in measured if e is not None) / len(measured)
    return Realised(len(steps), len(ranks), time_s, energy_j)


def realise(events: Iterable[Event]) -> RunRealised:
    """A run's realised figures, whole and per plan interval, from its ``plan`` and ``iteration`` markers in
    stored order (other kinds are passed over)."""
    ranks: dict[int, _Rank] = {}
    plans: dict[int, tuple[int, int, PlanInForce]] = {}  # interval -> (rank, t_ms, plan) of the lowest rank
    ignored = 0
    for event in events:
        if event.kind not in (PLAN, ITERATION):
            continue
        data = event.data if isinstance(event.data, Mapping) else {}
        rank = _int(data.get("rank"))
        if rank is None:
            ignored += 1
            continue
        state = ranks.setdefault(rank, _Rank())
        if event.kind == PLAN:
            state.interval += 1
            state.warmup_left = WARMUP_ITERATIONS
            known = plans.get(state.interval)
            if known is None or rank < known[0]:
                plans[state.interval] = (rank, event.t_ms, PlanInForce.from_data(data))
            continue
        step, time_s = _int(data.get("step")), _number(data.get("time_s"))
        if step is None or time_s is None or time_s < 0:
            ignored += 1
            continue
        state.reported = True
        if state.warmup_left > 0:
            state.warmup_left -= 1
            continue
        energy_j = _number(data.get("energy_j"))
        state.steps[step] = (state.interval, time_s, energy_j if energy_j is not None and energy_j >= 0 else None)
    reporting = {rank: state.steps for rank, state in ranks.items() if state.reported}
    common = set.intersection(*(set(steps) for steps in reporting.values())) if reporting else set()
    counted = sorted(common)
    by_interval: dict[int, list[int]] = {}
    for step in counted:
        intervals = {steps[step][0] for steps in reporting.values()}
        if len(intervals) == 1:
            by_interval.setdefault(intervals.pop(), []).append(step)
    indexes = sorted(set(plans) | set(by_interval))
    found = tuple(
        Interval(index, plans[index][2] if index in plans else None, plans[index][1] if index in plans else None,
                 realised_over(reporting, by_interval.get(index, [])))
        for index in indexes
    )
    return RunRealised(realised_over(reporting, counted), found, ignored)


def saving_fraction(planned: Realised, baseline: Realised | None) -> float | None:
    """R = 1 − realised energy per iteration / the baseline run's."""
    if baseline is None or planned.energy_j is None or not baseline.energy_j:
        return None
    return 1.0 - planned.energy_j / baseline.energy_j


def time_change_fraction(planned: Realised, baseline: Realised | None) -> float | None:
    """T = realised iteration time / the baseline run's − 1 (+0.004: 0.4 % slower)."""
    if baseline is None or planned.time_s is None or not baseline.time_s:
        return None
    return planned.time_s / baseline.time_s - 1.0

"""Which runs ran a frontier's plans, and what they measured against their baseline runs: the rows the
frontier runs API, the plan page's "Measured in runs" and the compare page read (figures from
:mod:`planner.plans.realised`).

Runs are found through the user's projects (``Run.objects.for_user``); a run's baseline run is the run of
its project named by its plan markers' ``baseline_run``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from dashboard.projects.models import Visitor
from dashboard.telemetry.models import Run, RunEvent
from planner.plans.realised import (
    ITERATION,
    PLAN,
    Event,
    Interval,
    Realised,
    RunRealised,
    realise,
    saving_fraction,
    time_change_fraction,
)

MAX_EVENTS = 2_000_000
"""The most plan and iteration markers read per run (about a million iterations of two ranks)."""
MAX_RUNS = 50
"""The most recent runs of a frontier listed."""


def run_events(run_id: int) -> Iterator[Event]:
    """A run's ``plan`` and ``iteration`` markers in stored order (time, then arrival)."""
    rows = (RunEvent.objects.filter(run_id=run_id, kind__in=(PLAN, ITERATION)).order_by("t_ms", "pk")
            .values_list("t_ms", "kind", "data"))
    for t_ms, kind, data in rows[:MAX_EVENTS].iterator(chunk_size=20_000):
        yield Event(t_ms, kind, data if isinstance(data, dict) else {})


def realise_run(run_id: int) -> RunRealised:
    return realise(run_events(run_id))


def has_iterations(run_ids: list[int]) -> set[int]:
    """The runs among ``run_ids`` that sent ``iteration`` markers."""
    return set(RunEvent.objects.filter(run_id__in=run_ids, kind=ITERATION).values_list("run_id", flat=True).distinct())


def baseline_run(user: Visitor, run: Run, name: str) -> Run | None:
    """The run of ``run``'s project called ``name`` (a plan marker's ``baseline_run``), if the user sees it."""
    if not name or name == run.name:
        return None
    return Run.objects.for_user(user).filter(project_id=run.project_id, name=name).select_related("project").first()


def frontier_runs(user: Visitor, frontier_id: int) -> QuerySet[Run]:
    """The user's runs that ran one of the frontier's plans (a ``plan`` marker naming it), newest first."""
    marked = RunEvent.objects.filter(kind=PLAN, data__frontier_id=frontier_id).values("run_id")
    return Run.objects.for_user(user).filter(pk__in=marked).select_related("project").order_by("-created_at", "-pk")


@dataclass(frozen=True)
class MeasuredPlan:
    """One plan interval of a run on a frontier, with its baseline run's figures."""

    run: Run
    interval: Interval
    baseline_run: Run | None
    baseline: Realised | None

    @property
    def realised(self) -> Realised:
        return self.interval.realised

    @property
    def predicted_saving_fraction(self) -> float | None:
        return self.interval.plan.predicted_saving_fraction if self.interval.plan else None

    @property
    def realised_saving_fraction(self) -> float | None:
        return saving_fraction(self.realised, self.baseline)

    @property
    def time_change_fraction(self) -> float | None:
        return time_change_fraction(self.realised, self.baseline)

    def as_item(self) -> dict[str, Any]:
        """The frontier runs API's item (the issue 12 contract)."""
        plan = self.interval.plan
        return {
            "run_id": self.run.pk, "run_name": self.run.name,
            "interval": self.interval.index, "reason": plan.reason if plan else "",
            "point": plan.point if plan else None,
            "straggler_time_s": plan.straggler_time_s if plan else None,
            "dry_run": plan.dry_run if plan else False,
            "baseline_run_id": self.baseline_run.pk if self.baseline_run else None,
            "baseline_run_name": self.baseline_run.name if self.baseline_run else None,
            "iterations": self.realised.iterations,
            "predicted_time_s": plan.predicted_time_s if plan else None,
            "predicted_energy_j": plan.predicted_energy_j if plan else None,
            "predicted_saving_fraction": self.predicted_saving_fraction,
            "realised_time_s": self.realised.time_s,
            "realised_energy_j": self.realised.energy_j,
            "baseline_time_s_measured": self.baseline.time_s if self.baseline else None,
            "baseline_energy_j_measured": self.baseline.energy_j if self.baseline else None,
            "realised_saving_fraction": self.realised_saving_fraction,
            "time_change_fraction": self.time_change_fraction,
        }


def measured_plans(user: Visitor, frontier_id: int, limit: int = MAX_RUNS) -> list[MeasuredPlan]:
    """Every plan interval of the frontier in the user's runs (newest run first, its intervals in order),
    each against the baseline run its plan marker names."""
    baselines: dict[int, Realised] = {}
    out = []
    for run in frontier_runs(user, frontier_id)[:limit]:
        figures = realise_run(run.pk)
        for interval in figures.plans:
            plan = interval.plan
            if plan is None or plan.frontier_id != frontier_id:
                continue
            base = baseline_run(user, run, plan.baseline_run)
            if base is not None and base.pk not in baselines:
                baselines[base.pk] = realise_run(base.pk).whole
            out.append(MeasuredPlan(run, interval, base, baselines[base.pk] if base is not None else None))
    return out

"""Which runs ran a frontier's plans, and what they measured against their baseline runs: the rows the
frontier runs API, the plan page's "Measured in runs" and the compare page read (figures from
:mod:`planner.plans.realised`).

Runs are found through the user's projects (``Run.objects.for_user``); a run's baseline run is the run of
its project named by its plan markers' ``baseline_run``.

A finished run's figures (up to ``MAX_EVENTS`` markers read) are kept in Django's cache, as its page is
(:mod:`dashboard.runs.page_cache`), under a key naming its state: its version token
(:mod:`dashboard.telemetry.versions`, replaced when a batch is stored for it, late markers included, or it is
closed or reopened), its status and end, and the stamp of its stored samples the run page's key has too
(``versions.samples_stamps``), read with the others in one statement (for a writer whose announcement this
cache did not see). A running run is read afresh every time.
Reading never writes to the database; writing the cache is allowed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet

from dashboard.projects.models import Visitor
from dashboard.telemetry import versions
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
LAYOUT = 1
"""Bump when RunRealised changes shape, so that a deploy never reads figures cached by the one before."""

log = logging.getLogger(__name__)


def run_events(run_id: int) -> Iterator[Event]:
    """A run's ``plan`` and ``iteration`` markers in stored order (time, then arrival)."""
    rows = (RunEvent.objects.filter(run_id=run_id, kind__in=(PLAN, ITERATION)).order_by("t_ms", "pk")
            .values_list("t_ms", "kind", "data"))
    for t_ms, kind, data in rows[:MAX_EVENTS].iterator(chunk_size=20_000):
        yield Event(t_ms, kind, data if isinstance(data, dict) else {})


def realise_run(run_id: int) -> RunRealised:
    """A run's figures, read from its markers now."""
    return realise(run_events(run_id))


def _figures_key(run: Run, samples: str | None) -> str:
    state = [LAYOUT, MAX_EVENTS, run.status, run.ended_at.isoformat() if run.ended_at else None, samples]
    digest = hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()[:32]
    return f"wattwise:measured:{run.pk}:{digest}"


def realised_runs(runs: Iterable[Run]) -> dict[int, RunRealised]:
    """Each run's figures by id: a finished run's from the cache while its state is unchanged (no markers
    read), else read from its markers (and kept, if it is finished). The cache failing (Redis down) reads
    them afresh and logs it."""
    runs = list({run.pk: run for run in runs}.values())
    finished = [run for run in runs if run.status == Run.Status.FINISHED] if settings.WATTWISE_PAGE_CACHE else []
    out: dict[int, RunRealised] = {}
    states: dict[int, tuple[str, str]] = {}  # run id -> (its figures' key, its version token)
    if finished:
        try:
            stamps = versions.samples_stamps([run.pk for run in finished])
            keys = {run.pk: _figures_key(run, stamps.get(run.pk)) for run in finished}
            found = cache.get_many([*keys.values(), *(versions.token_key("run", pk) for pk in keys)])
            for pk, key in keys.items():
                [token] = versions.tokens_now([versions.token_key("run", pk)], found)
                states[pk] = (key, token)
                entry = found.get(key)
                if isinstance(entry, dict) and entry.get("token") == token and isinstance(entry.get("figures"), RunRealised):
                    out[pk] = entry["figures"]
        except Exception:
            log.exception("measured figures' cache unreadable; runs %s read afresh", [run.pk for run in finished])
            states = {}
    keep: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.pk not in out:
            out[run.pk] = realise_run(run.pk)
            if run.pk in states:
                key, token = states[run.pk]
                keep[key] = {"token": token, "figures": out[run.pk]}
    if keep:
        try:
            cache.set_many(keep, timeout=settings.WATTWISE_PAGE_CACHE_S)
        except Exception:
            log.exception("measured figures' cache unwritable; runs not cached")
    return out


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
    runs = list(frontier_runs(user, frontier_id)[:limit])
    figures = realised_runs(runs)
    baselines: dict[int, Realised] = {}
    out = []
    for run in runs:
        for interval in figures[run.pk].plans:
            plan = interval.plan
            if plan is None or plan.frontier_id != frontier_id:
                continue
            base = baseline_run(user, run, plan.baseline_run)
            if base is not None and base.pk not in baselines:
                baselines[base.pk] = (figures.get(base.pk) or realised_runs([base])[base.pk]).whole
            out.append(MeasuredPlan(run, interval, base, baselines[base.pk] if base is not None else None))
    return out

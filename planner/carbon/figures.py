"""A run's carbon as the runs app shows it: the one module of the carbon app that ``dashboard.runs`` imports.

Reads only. The figures were computed and stored by tasks (:mod:`planner.carbon.recompute` says when);
each comes with its :class:`CarbonState`, so a page can say plainly when they are being computed or will
be recomputed instead of computing them in the request.

* :func:`run_section` — the run page's carbon section;
* :func:`run_carbon` — a run's stored totals, per-GPU figures and offset quote (exports, the runs API);
* :func:`runs_carbon` — the same for several runs in a few queries (compare);
* :func:`run_summary` — what ``manage.py run_summary`` prints;
* :func:`carbon_stamp_sql` — what the run's stored figures are now, in SQL (part of a cached page's key);
* :data:`figures_changed` — sent after commit when a run's figures were stored (``run_ids``) or what a
  project's pages quote changed (``project_id``: its offset policy, credit prices), for the page cache.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.dispatch import Signal

from dashboard.telemetry.models import Run
from planner.carbon.energy import run_energy_j
from planner.carbon.models import OffsetPolicy, RunCarbon, RunGpuCarbon
from planner.carbon.offsetting import RunOffset, policy_for, quote_run
from planner.carbon.section import run_section
from planner.carbon.state import CarbonState, notice, state_of
from planner.carbon.summary import carbon_summary as run_summary

__all__ = [
    "CarbonFigures", "CarbonState", "GpuEmissions", "StoredTotals", "announce_figures", "carbon_stamp_sql",
    "figures_changed", "run_carbon", "run_section", "run_summary", "runs_carbon",
]

log = logging.getLogger(__name__)

figures_changed = Signal()
"""A run's carbon figures were stored (``run_ids``), or what a project's pages quote changed (``project_id``)."""


def announce_figures(**what: Any) -> None:
    """Send :data:`figures_changed` with ``run_ids`` or ``project_id``; what a receiver raises is logged."""
    for receiver, result in figures_changed.send_robust(sender=None, **what):
        if isinstance(result, Exception):
            log.error("receiver %r failed for %s", receiver, what, exc_info=result)


def carbon_stamp_sql() -> str:
    """What a run's stored figures are now, as one SQL scalar subquery (text; NULL without figures) whose one
    parameter is the run's id: a recompute stores a new row, a stale flag changes the old one."""
    table = RunCarbon._meta.db_table
    return f"(SELECT id || ':' || computed_at || ':' || stale FROM {table} WHERE run_id = %s)"


@dataclass(frozen=True)
class GpuEmissions:
    emissions_g: float  # location-based
    market_emissions_g: float


@dataclass(frozen=True)
class StoredTotals:
    """What the last recompute stored for the whole run."""

    energy_j: float  # the GPU energy they cover
    facility_energy_kwh: float
    pue: float
    emissions_g: float  # location-based
    market_emissions_g: float
    computed_at: datetime


@dataclass(frozen=True)
class CarbonFigures:
    """A run's stored carbon figures (``totals`` is ``None`` while nothing is stored) and their state."""

    run_id: int
    state: CarbonState
    run_energy_j: float  # the run's GPU energy now
    totals: StoredTotals | None = None
    offset: RunOffset | None = None
    gpus: Mapping[int, GpuEmissions] = field(default_factory=dict)  # run-GPU id → its emissions

    @property
    def current(self) -> bool:
        return self.state is CarbonState.CURRENT

    @property
    def stale(self) -> bool:
        return self.state is CarbonState.STALE

    @property
    def label(self) -> str:
        return self.state.label

    @property
    def notice(self) -> str:
        covered_j = self.totals.energy_j if self.totals else None
        return notice(self.state, covered_j=covered_j, run_energy_j=self.run_energy_j)


def _figures(
    run: Run, stored: RunCarbon | None, energy_j: float, policy: OffsetPolicy | None,
    gpus: Mapping[int, GpuEmissions] | None = None,
) -> CarbonFigures:
    state = state_of(stored, energy_j)
    if stored is None:
        return CarbonFigures(run.pk, state, energy_j)
    stored.run = run  # the quote names the run; it is at hand
    totals = StoredTotals(
        energy_j=stored.energy_j, facility_energy_kwh=stored.facility_energy_kwh, pue=stored.pue,
        emissions_g=stored.emissions_g, market_emissions_g=stored.market_emissions_g, computed_at=stored.computed_at,
    )
    offset = quote_run(stored, policy) if policy is not None else None
    return CarbonFigures(run.pk, state, energy_j, totals, offset, gpus or {})


def run_carbon(run: Run, *, gpus: bool = False, offset: bool = True) -> CarbonFigures:
    """``run``'s stored figures with its offset quote (unless ``offset=False``) and, with ``gpus=True``,
    each GPU's emissions."""
    stored = RunCarbon.objects.filter(run=run).first()
    per_gpu: dict[int, GpuEmissions] = {}
    if stored is not None and gpus:
        per_gpu = {
            run_gpu_id: GpuEmissions(location_g, market_g)
            for run_gpu_id, location_g, market_g in RunGpuCarbon.objects.filter(run_carbon=stored).values_list(
                "run_gpu_id", "emissions_g", "market_emissions_g"
            )
        }
    policy = policy_for(run.project_id) if stored is not None and offset else None
    return _figures(run, stored, run_energy_j(run), policy, per_gpu)


def runs_carbon(runs: Sequence[Run], energy_j: Mapping[int, float]) -> dict[int, CarbonFigures]:
    """Each run's stored figures and offset quote, by run id; ``energy_j`` is each run's energy now
    (the caller has it; a run missing from it counts as having none)."""
    stored = {rc.run_id: rc for rc in RunCarbon.objects.filter(run__in=[r.pk for r in runs])}
    projects = {r.project_id for r in runs if r.pk in stored}
    # An unsaved default policy for projects that never set one (see offsetting.policy_for).
    policies = {p.project_id: p for p in OffsetPolicy.objects.filter(project_id__in=projects)}
    return {
        run.pk: _figures(
            run, stored.get(run.pk), energy_j.get(run.pk, 0.0),
            policies.get(run.project_id) or OffsetPolicy(project_id=run.project_id),
        )
        for run in runs
    }

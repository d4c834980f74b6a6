"""Whether a run's stored figures are current, and how a page says so.

Pages never recompute (a GET never writes): tasks do, when an input changes (see
:mod:`planner.carbon.recompute`). Between the change and the recompute a page shows the stored figures,
or none, and says plainly which of these it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import StrEnum

from django.conf import settings
from django.db.models import Sum

from dashboard.telemetry.models import RunGpu
from planner.carbon.models import RunCarbon
from planner.units import J_PER_KWH


class CarbonState(StrEnum):
    CURRENT = "current"
    BEHIND = "behind"  # samples arrived since they were computed: a streaming run, recomputed shortly
    STALE = "stale"  # something they depend on changed (intensity data, a site, a contract): queued
    PENDING = "pending"  # the run has energy but no figures yet: being computed
    NO_ENERGY = "no energy"  # nothing to compute yet

    @property
    def label(self) -> str:
        """A few words for tables and notes."""
        return _LABELS[self]


_LABELS = {
    CarbonState.CURRENT: "current",
    CarbonState.BEHIND: "being recomputed (samples arrived since)",
    CarbonState.STALE: "will be recomputed (an input changed)",
    CarbonState.PENDING: "being computed",
    CarbonState.NO_ENERGY: "no energy",
}


def state_of(stored: RunCarbon | None, run_energy_j: float) -> CarbonState:
    """The state of ``stored`` for a run whose energy is ``run_energy_j`` now."""
    if stored is None:
        return CarbonState.PENDING if run_energy_j > 0 else CarbonState.NO_ENERGY
    if stored.stale:
        return CarbonState.STALE
    if not math.isclose(stored.energy_j, run_energy_j, rel_tol=1e-9, abs_tol=1e-6):
        return CarbonState.BEHIND
    return CarbonState.CURRENT


def run_energies_j(run_ids: Iterable[int]) -> dict[int, float]:
    """Each run's GPU energy now (Σ of its per-GPU running totals), in one query."""
    rows = RunGpu.objects.filter(run_id__in=list(run_ids)).values("run_id").annotate(total=Sum("energy_j")).order_by()
    return {row["run_id"]: float(row["total"] or 0.0) for row in rows}


def notice(state: CarbonState, *, covered_j: float | None = None, run_energy_j: float | None = None) -> str:
    """One sentence for a page about figures in ``state`` (empty when they are current)."""
    interval_s = settings.WATTWISE_CARBON_RECOMPUTE_S
    if state is CarbonState.BEHIND and covered_j is not None and run_energy_j is not None:
        return (f"These figures cover {covered_j / J_PER_KWH:,.3f} kWh of the run's {run_energy_j / J_PER_KWH:,.3f} kWh "
                f"so far; they are being recomputed (at most every {interval_s:g} s while the run streams).")
    if state is CarbonState.BEHIND:
        return f"These figures are being recomputed (at most every {interval_s:g} s while the run streams)."
    if state is CarbonState.STALE:
        return ("These figures will be recomputed: intensity data, a site, a default or a contract they depend on "
                "changed since they were computed.")
    if state is CarbonState.PENDING:
        return (f"The carbon figures of this run are being computed (while a run streams, within {interval_s:g} s "
                "of its first samples).")
    if state is CarbonState.NO_ENERGY:
        return "No energy yet, so no carbon figures."
    return ""

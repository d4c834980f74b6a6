"""A run's and a project's stored carbon as reports read it (model cards, period reports): the stored
figures of several runs in a few queries, where they were emitted, which intensity sources and
instruments back them, and the offsets a project retired. Read only, like :mod:`planner.carbon.figures`
(tasks compute the figures); ``dashboard.reports`` imports the carbon app through these two modules alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from dashboard.telemetry.models import Run
from planner.carbon.models import (
    Certificate,
    OffsetRetirement,
    PowerPurchase,
    RunCarbon,
    RunCarbonHour,
    RunNodeCarbon,
)
from planner.carbon.state import CarbonState, run_energies_j, state_of
from planner.grid_carbon.licences import SourceLicence, licence_of
from planner.units import J_PER_KWH

__all__ = [
    "CarbonState", "Instrument", "Place", "Retirement", "RunReportCarbon", "SourceLicence", "instruments_for",
    "licence_of", "retirements_between", "runs_report_carbon",
]


@dataclass(frozen=True)
class Place:
    """Where part of a run drew its energy: a node's zone or region, and its site if it has one."""

    where: str
    zone: str
    site: str
    energy_j: float
    facility_energy_kwh: float
    emissions_g: float
    market_emissions_g: float

    @property
    def label(self) -> str:
        """"demo-frankfurt (DE)" for a site, "aws:eu-north-1 (SE-SE3)" for a region, "DE" for a zone."""
        if self.site:
            return f"{self.site} ({self.where})"
        return f"{self.where} ({self.zone})" if self.zone and self.zone != self.where else self.where


@dataclass(frozen=True)
class RunReportCarbon:
    """One run's stored figures (zeros with ``stored`` false while none are stored) and what backs them."""

    run_id: int
    state: CarbonState
    stored: bool = False
    energy_j: float = 0.0  # the energy the figures cover
    facility_energy_kwh: float = 0.0
    emissions_g: float = 0.0  # location-based
    market_emissions_g: float = 0.0
    places: tuple[Place, ...] = ()
    sources: tuple[str, ...] = ()  # the intensity sources its hours used
    market: dict[str, float] = field(default_factory=dict)  # kWh covered by certificates, PPAs, or neither

    @property
    def pue(self) -> float | None:
        return self.facility_energy_kwh * J_PER_KWH / self.energy_j if self.energy_j else None


_MARKET_KWH = ("certificate_kwh", "ppa_kwh", "uncovered_kwh")


def runs_report_carbon(runs: Iterable[Run]) -> dict[int, RunReportCarbon]:
    """Each run's stored figures, places, sources and instrument cover, by run id."""
    run_ids = [r.pk for r in runs]
    energies = run_energies_j(run_ids)
    stored = {rc.run_id: rc for rc in RunCarbon.objects.filter(run_id__in=run_ids)}
    places: dict[int, list[Place]] = defaultdict(list)
    market: dict[int, dict[str, float]] = defaultdict(lambda: dict.fromkeys(_MARKET_KWH, 0.0))
    for node in RunNodeCarbon.objects.filter(run_carbon__run_id__in=run_ids).select_related("run_carbon"):
        run_id = node.run_carbon.run_id
        places[run_id].append(Place(node.where, node.zone, node.site_name, node.energy_j, node.facility_energy_kwh,
                                    node.emissions_g, node.market_emissions_g))
        for key in _MARKET_KWH:
            market[run_id][key] += float(node.market.get(key) or 0.0)
    sources: dict[int, set[str]] = defaultdict(set)
    hours = RunCarbonHour.objects.filter(node_carbon__run_carbon__run_id__in=run_ids)
    for run_id, source in hours.values_list("node_carbon__run_carbon__run_id", "source").distinct():
        sources[run_id].add(source)
    out = {}
    for run_id in run_ids:
        rc = stored.get(run_id)
        state = state_of(rc, energies.get(run_id, 0.0))
        if rc is None:
            out[run_id] = RunReportCarbon(run_id, state)
            continue
        out[run_id] = RunReportCarbon(
            run_id, state, True, rc.energy_j, rc.facility_energy_kwh, rc.emissions_g, rc.market_emissions_g,
            tuple(places[run_id]), tuple(sorted(sources[run_id])), dict(market[run_id]),
        )
    return out


@dataclass(frozen=True)
class Retirement:
    retired_on: date
    credit_type: str
    tonnes: float
    registry: str
    reference: str
    run_name: str


def retirements_between(project_id: int, first: date, last: date) -> list[Retirement]:
    """Credits the project retired from ``first`` to ``last`` (inclusive), oldest first."""
    rows = (OffsetRetirement.objects.filter(project_id=project_id, retired_on__range=(first, last))
            .select_related("run").order_by("retired_on", "pk"))
    return [Retirement(r.retired_on, r.get_credit_type_display(), r.tonnes, r.registry, r.reference,
                       r.run.name if r.run else "") for r in rows]


@dataclass(frozen=True)
class Instrument:
    """A certificate or PPA the project holds for a year: what can back its market-based figure."""

    kind: str
    label: str
    vintage_year: int
    market_boundary: str
    energy_kwh: float | None
    share_pct: float | None
    emission_factor_g_per_kwh: float


def instruments_for(project_id: int, years: Iterable[int]) -> list[Instrument]:
    """The certificates (retired ones) and PPAs (certificates kept) of the project for ``years``."""
    years = list(years)
    out = [Instrument(c.kind, c.label, c.vintage_year, c.market_boundary, c.energy_kwh, None,
                      c.emission_factor_g_per_kwh)
           for c in Certificate.objects.filter(project_id=project_id, vintage_year__in=years, retired=True)
           .order_by("vintage_year", "pk")]
    out += [Instrument("PPA", p.label, p.vintage_year, p.market_boundary, p.energy_kwh, p.share_pct,
                       p.emission_factor_g_per_kwh)
            for p in PowerPurchase.objects.filter(project_id=project_id, vintage_year__in=years,
                                                  certificates_retained=True).order_by("vintage_year", "pk")]
    return out

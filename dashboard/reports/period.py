"""A project's period report as plain data: energy, location- and market-based emissions with the
instruments behind the market-based figure, PUE, offsets retired, the biggest runs, energy by GPU model and
by site, and the methodology naming every data source with its licence.

Totals are sums of the runs' stored figures (energy: the per-device running totals; carbon: what the last
recompute stored), so a report adds up to its runs exactly. Runs whose figures are not current are listed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce

from dashboard.projects.models import Project
from dashboard.reports.periods import Period
from dashboard.telemetry.models import Gpu, Run, RunGpu
from dashboard.telemetry.work import Family, PerUnit, Work, families, per_unit, runs_work
from planner.carbon.reporting import (
    CarbonState,
    Instrument,
    Retirement,
    RunReportCarbon,
    SourceLicence,
    instruments_for,
    licence_of,
    retirements_between,
    runs_report_carbon,
)
from planner.units import J_PER_KWH

BIGGEST = 10
# What the report's own method rests on besides grid data (docs/carbon.md says how each is used).
METHOD_SOURCES = (
    SourceLicence("Device energy: NVML GPU energy counters (power integrated where a GPU has none), Linux RAPL "
                  "for CPU packages and DRAM, as measured by the Wattwise agent", "Apache-2.0 (Wattwise)",
                  "Wattwise"),
    SourceLicence("Cloud region to grid zone catalogue (planner/grid_carbon/data/regions)", "Apache-2.0 (Wattwise)",
                  "Wattwise"),
)


@dataclass(frozen=True)
class RunRow:
    pk: int
    name: str
    started_at: datetime | None
    tags: tuple[str, ...]
    gpus: int
    energy_j: float
    carbon: RunReportCarbon
    work: Work = field(default_factory=Work)

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / J_PER_KWH

    @property
    def emissions_g(self) -> float | None:
        """The stored location-based figure when current (per-unit figures need a current one)."""
        return self.carbon.emissions_g if self.current and self.carbon.stored else None

    @property
    def per_unit(self) -> PerUnit | None:
        """Energy and emissions per unit of work, in the finest unit the run has."""
        units = per_unit(self.work, self.energy_j, self.emissions_g)
        return units[0] if units else None

    @property
    def current(self) -> bool:
        return self.carbon.state in (CarbonState.CURRENT, CarbonState.NO_ENERGY)


@dataclass(frozen=True)
class Share:
    """One line of a breakdown: a GPU model or a site."""

    label: str
    energy_j: float
    devices: int = 0
    emissions_g: float | None = None
    market_emissions_g: float | None = None

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / J_PER_KWH


@dataclass(frozen=True)
class PeriodReport:
    project: Project
    period: Period
    runs: list[RunRow]
    by_gpu_model: list[Share]
    by_site: list[Share]
    instruments: list[Instrument]
    retirements: list[Retirement]
    sources: list[SourceLicence] = field(default_factory=list)

    @property
    def energy_j(self) -> float:
        return sum(r.energy_j for r in self.runs)

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / J_PER_KWH

    @property
    def covered_energy_j(self) -> float:
        """The energy the stored carbon figures cover (less than ``energy_j`` while some are behind)."""
        return sum(r.carbon.energy_j for r in self.runs)

    @property
    def facility_energy_kwh(self) -> float:
        return sum(r.carbon.facility_energy_kwh for r in self.runs)

    @property
    def pue(self) -> float | None:
        covered = self.covered_energy_j
        return self.facility_energy_kwh * J_PER_KWH / covered if covered else None

    @property
    def emissions_g(self) -> float:
        return sum(r.carbon.emissions_g for r in self.runs)

    @property
    def market_emissions_g(self) -> float:
        return sum(r.carbon.market_emissions_g for r in self.runs)

    @property
    def market_cover_kwh(self) -> dict[str, float]:
        """Facility kWh the market-based figure took from certificates, from PPAs, and from neither."""
        cover: dict[str, float] = defaultdict(float)
        for r in self.runs:
            for key, kwh in r.carbon.market.items():
                cover[key] += kwh
        return dict(cover)

    @property
    def retired_t(self) -> float:
        return sum(r.tonnes for r in self.retirements)

    @property
    def biggest(self) -> list[RunRow]:
        return sorted(self.runs, key=lambda r: -r.energy_j)[:BIGGEST]

    @property
    def families(self) -> list[Family]:
        """The runs grouped by tag, with energy and emissions per unit of work."""
        return families([(r.tags, r.energy_j, r.emissions_g, r.work) for r in self.runs])

    @property
    def not_current(self) -> list[RunRow]:
        return [r for r in self.runs if not r.current]


def runs_in(project: Project, period: Period) -> list[Run]:
    """The project's runs that started in the period (a run not started yet counts from when it was made)."""
    return list(
        Run.objects.filter(project=project)
        .annotate(began=Coalesce("started_at", "created_at"))
        .filter(began__gte=period.start, began__lt=period.end)
        .prefetch_related("tags").order_by("began", "pk")
    )


def _energy_by_gpu_model(runs: list[Run]) -> list[Share]:
    rows = (RunGpu.objects.filter(run__in=runs).values("gpu__component", "gpu__name")
            .annotate(energy_j=Sum("energy_j"), devices=Count("gpu", distinct=True)).order_by("-energy_j"))
    labels: dict[str, str] = {Gpu.Component.CPU: "CPU packages (RAPL)", Gpu.Component.DRAM: "DRAM (RAPL)"}
    out: dict[str, Share] = {}
    for row in rows:
        label = labels.get(row["gpu__component"]) or row["gpu__name"] or "GPU (model not reported)"
        before = out.get(label, Share(label, 0.0))
        out[label] = Share(label, before.energy_j + float(row["energy_j"] or 0.0), before.devices + row["devices"])
    return sorted(out.values(), key=lambda s: -s.energy_j)


def _energy_by_site(carbon: list[RunReportCarbon]) -> list[Share]:
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for run in carbon:
        for place in run.places:
            entry = sums[place.label]
            entry[0] += place.energy_j
            entry[1] += place.emissions_g
            entry[2] += place.market_emissions_g
    shares = [Share(label, e, 0, g, m) for label, (e, g, m) in sums.items()]
    return sorted(shares, key=lambda s: -s.energy_j)


def _gpu_counts(runs: list[Run]) -> dict[int, tuple[float, int]]:
    rows = (RunGpu.objects.filter(run__in=runs).values("run_id")
            .annotate(energy_j=Sum("energy_j"), gpus=Count("pk", filter=Q(gpu__component=Gpu.Component.GPU))
                      ).order_by())
    return {row["run_id"]: (float(row["energy_j"] or 0.0), row["gpus"]) for row in rows}


def period_report(project: Project, period: Period) -> PeriodReport:
    runs = runs_in(project, period)
    carbon = runs_report_carbon(runs)
    totals = _gpu_counts(runs)
    work = runs_work(r.pk for r in runs)
    rows = [RunRow(r.pk, r.name, r.started_at, tuple(t.name for t in r.tags.all()), totals.get(r.pk, (0.0, 0))[1],
                   totals.get(r.pk, (0.0, 0))[0], carbon[r.pk], work[r.pk]) for r in runs]
    used = sorted({s for c in carbon.values() for s in c.sources})
    return PeriodReport(
        project=project, period=period, runs=rows, by_gpu_model=_energy_by_gpu_model(runs),
        by_site=_energy_by_site(list(carbon.values())), instruments=instruments_for(project.pk, period.years),
        retirements=retirements_between(project.pk, period.first, period.last),
        sources=[*METHOD_SOURCES, *(licence_of(s) for s in used)],
    )

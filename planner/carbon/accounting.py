"""A run's emissions: computed with the core library from stored energy and intensity, then stored.

For each node: its hourly GPU energy (from the per-minute rollups), its placement (site, agent flag,
project default or world; see :mod:`placing`), and the intensity of each UTC hour through the fallback
chain (stored hourly rows → zone yearly → country yearly → world). Location-based and market-based
figures are stored side by side, per node-hour and per GPU, with each hour's source, year, basis, step
and reason, so a figure can be explained and reproduced.

Figures are computed and stored by tasks only (see :mod:`planner.carbon.recompute` for when); pages
read what is stored through :mod:`planner.carbon.figures`.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from dashboard.telemetry.models import Node, Run
from planner.carbon.energy import NodeEnergy, run_energy_by_node, run_energy_j
from planner.carbon.figures import announce_figures
from planner.carbon.instruments import other_runs_facility_kwh_by_year, project_instruments, shared
from planner.carbon.models import RunCarbon, RunCarbonHour, RunGpuCarbon, RunNodeCarbon
from planner.carbon.placing import Placement, place_node, project_settings
from planner.carbon.recompute import queue_recompute_stale
from planner.carbon.state import CarbonState, state_of
from planner.carbon.stored import StoredHourly
from planner.grid_carbon import EmissionsReport, IntensityResolver, MarketBasedResult, compute_emissions
from planner.grid_carbon.market import market_based

log = logging.getLogger(__name__)


@dataclass
class NodeResult:
    node: Node
    placement: Placement
    energy: NodeEnergy
    report: EmissionsReport
    market: MarketBasedResult


@dataclass
class GpuResult:
    run_gpu_id: int
    energy_j: float
    emissions_g: float
    market_emissions_g: float


@dataclass
class RunResult:
    nodes: list[NodeResult]
    gpus: list[GpuResult]
    notes: list[str] = field(default_factory=list)

    @property
    def energy_j(self) -> float:
        return sum(n.report.energy_j for n in self.nodes)

    @property
    def emissions_g(self) -> float:
        return sum(n.report.location_emissions_g for n in self.nodes)

    @property
    def market_emissions_g(self) -> float:
        return sum(n.market.emissions_g for n in self.nodes)


def compute_run_carbon(run: Run) -> RunResult:
    """Compute (not store) the emissions of ``run`` from what is stored now."""
    settings = project_settings(run.project_id)
    energies = [e for e in run_energy_by_node(run) if e.energy_j_by_hour]
    if not energies:
        return RunResult([], [])
    nodes = Node.objects.in_bulk([e.node_id for e in energies])
    placements = {e.node_id: place_node(run, nodes[e.node_id], settings) for e in energies}
    zones = {p.location.zone for p in placements.values() if p.location.zone}
    first = min(min(e.energy_j_by_hour) for e in energies)
    last = max(max(e.energy_j_by_hour) for e in energies)
    resolver = IntensityResolver(StoredHourly(zones, first, last, project_id=run.project_id))
    reports = {
        e.node_id: compute_emissions(
            e.energy_j_by_hour, where=placements[e.node_id].location, pue=placements[e.node_id].pue,
            resolver=resolver,
        )
        for e in energies
    }
    instruments = project_instruments(run.project_id, settings)
    this_run_by_year: dict[int, float] = defaultdict(float)
    for report in reports.values():
        for hour in report.hours:
            this_run_by_year[hour.hour_utc.year] += hour.facility_energy_kwh
    others = other_runs_facility_kwh_by_year(run.project_id, run.pk)
    results: list[NodeResult] = []
    gpus: list[GpuResult] = []
    for energy in energies:
        report, placement = reports[energy.node_id], placements[energy.node_id]
        node_by_year: dict[int, float] = defaultdict(float)
        for hour in report.hours:
            node_by_year[hour.hour_utc.year] += hour.facility_energy_kwh
        share = {
            year: kwh / (this_run_by_year[year] + others.get(year, 0.0))
            for year, kwh in node_by_year.items()
            if kwh > 0
        }
        market = market_based(report.hours, shared(instruments, share), placement.location)
        results.append(NodeResult(nodes[energy.node_id], placement, energy, report, market))
        gpus.extend(_gpu_results(energy, report, market))
    notes = sorted({note for r in results for note in r.market.notes})
    if any(r.report.mixed_basis for r in results) or len({b for r in results for b in r.report.bases}) > 1:
        notes.insert(0, "hours of this run use both lifecycle and direct intensities; the total mixes methods")
    return RunResult(results, gpus, notes)


def _gpu_results(energy: NodeEnergy, report: EmissionsReport, market: MarketBasedResult) -> list[GpuResult]:
    """Split a node's hours over its GPUs by their share of each hour's energy (same PUE, same grid)."""
    by_hour = {h.hour_utc: h for h in report.hours}
    market_by_hour = {h.hour_utc: h for h in market.hours}
    results = []
    for run_gpu_id, hours in energy.gpu_energy_j_by_hour.items():
        location_g = market_g = 0.0
        for when, energy_j in hours.items():
            hour = by_hour[when]
            if hour.energy_j > 0:
                location_g += hour.emissions_g * energy_j / hour.energy_j
                market_g += market_by_hour[when].emissions_g * energy_j / hour.energy_j
        results.append(GpuResult(run_gpu_id, sum(hours.values()), location_g, market_g))
    return results


def _market_summary(market: MarketBasedResult) -> dict[str, object]:
    return {
        "certificate_kwh": market.certificate_kwh,
        "ppa_kwh": market.ppa_kwh,
        "uncovered_kwh": market.uncovered_kwh,
        "uncovered_method": market.uncovered_method,
        "uncovered_source": market.uncovered_source,
        "unused_certificate_kwh": market.unused_certificate_kwh,
        "excluded": list(market.excluded),
        "notes": list(market.notes),
    }


def store_run_carbon(run: Run, *, if_behind: bool = False) -> RunCarbon | None:
    """Compute and store ``run``'s emissions, replacing what was stored; ``None`` for a run with no energy.

    ``if_behind``: keep figures that are current (see :func:`is_current`) instead of recomputing them.
    """
    with transaction.atomic():
        # Serialise recomputes of one run (two tasks may race); readers are not blocked.
        Run.objects.select_for_update().filter(pk=run.pk).first()
        if if_behind:
            stored = RunCarbon.objects.filter(run=run).first()
            if is_current(stored, run):
                return stored
        result = compute_run_carbon(run)
        transaction.on_commit(lambda: announce_figures(run_ids=[run.pk]))
        previous_by_year = _stored_kwh_by_year(run)
        RunCarbon.objects.filter(run=run).delete()
        if not result.nodes:
            return None
        stored = RunCarbon.objects.create(
            run=run,
            computed_at=timezone.now(),
            energy_j=result.energy_j,
            facility_energy_kwh=sum(n.report.facility_energy_kwh for n in result.nodes),
            emissions_g=result.emissions_g,
            market_emissions_g=result.market_emissions_g,
            hours=sum(len(n.report.hours) for n in result.nodes),  # node-hours, like fallback_hours
            fallback_hours=sum(n.report.fallback_hours for n in result.nodes),
            mixed_basis=len({b for n in result.nodes for b in n.report.bases}) > 1,
            notes=result.notes,
        )
        for node in result.nodes:
            _store_node(stored, node)
        RunGpuCarbon.objects.bulk_create(
            [
                RunGpuCarbon(run_carbon=stored, run_gpu_id=g.run_gpu_id, energy_j=g.energy_j,
                             emissions_g=g.emissions_g, market_emissions_g=g.market_emissions_g)
                for g in result.gpus
            ]
        )
        _mark_siblings_stale(run, previous_by_year, _result_kwh_by_year(result))
    return stored


def _store_node(stored: RunCarbon, node: NodeResult) -> None:
    placement, report = node.placement, node.report
    node_row = RunNodeCarbon.objects.create(
        run_carbon=stored,
        node=node.node,
        where=placement.where,
        zone=report.zone or "",
        site_name=placement.site_name,
        located_by=placement.located_by,
        located_note=placement.note,
        pue=placement.pue,
        energy_j=report.energy_j,
        facility_energy_kwh=report.facility_energy_kwh,
        emissions_g=report.location_emissions_g,
        market_emissions_g=node.market.emissions_g,
        market=_market_summary(node.market),
    )
    market_by_hour = {h.hour_utc: h.emissions_g for h in node.market.hours}
    RunCarbonHour.objects.bulk_create(
        [
            RunCarbonHour(
                node_carbon=node_row,
                hour_utc=h.hour_utc,
                energy_j=h.energy_j,
                pue=h.pue,
                facility_energy_kwh=h.facility_energy_kwh,
                intensity_g_per_kwh=h.intensity_g_per_kwh,
                emissions_g=h.emissions_g,
                market_emissions_g=market_by_hour[h.hour_utc],
                source=h.source[:200],
                basis=h.basis,
                year=h.year,
                step=h.step,
                reason=h.reason,
            )
            for h in report.hours
        ],
        batch_size=2000,
    )


def _stored_kwh_by_year(run: Run) -> dict[int, float]:
    totals: dict[int, float] = defaultdict(float)
    for when, kwh in RunCarbonHour.objects.filter(node_carbon__run_carbon__run=run).values_list(
        "hour_utc", "facility_energy_kwh"
    ):
        totals[when.year] += kwh
    return totals


def _result_kwh_by_year(result: RunResult) -> dict[int, float]:
    totals: dict[int, float] = defaultdict(float)
    for node in result.nodes:
        for hour in node.report.hours:
            totals[hour.hour_utc.year] += hour.facility_energy_kwh
    return totals


def _mark_siblings_stale(run: Run, before: dict[int, float], after: dict[int, float]) -> None:
    """Other runs' shares of yearly certificates depend on this run's energy: when it moved, flag them
    and queue their recompute.

    Their recompute does not change their own energy, so this never cascades further.
    """
    years = {
        y for y in set(before) | set(after)
        if not math.isclose(before.get(y, 0.0), after.get(y, 0.0), rel_tol=1e-9, abs_tol=1e-12)
    }
    if not years:
        return
    from planner.carbon.models import Certificate, PowerPurchase

    held = set(
        Certificate.objects.filter(project_id=run.project_id, vintage_year__in=years).values_list(
            "vintage_year", flat=True
        )
    ) | set(
        PowerPurchase.objects.filter(
            project_id=run.project_id, vintage_year__in=years, energy_kwh__isnull=False, share_pct__isnull=True
        ).values_list("vintage_year", flat=True)
    )
    if held and RunCarbon.objects.filter(
        run__project_id=run.project_id, nodes__hours__hour_utc__year__in=held
    ).exclude(run=run).update(stale=True):
        queue_recompute_stale()


def is_current(stored: RunCarbon | None, run: Run) -> bool:
    """Stored figures are current when nothing was flagged and they cover the run's energy now."""
    if stored is None or stored.stale:
        return False
    return state_of(stored, run_energy_j(run)) is CarbonState.CURRENT

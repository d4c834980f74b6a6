"""The run page's carbon section as plain context, read from the stored figures (never computed here:
tasks keep them in step, see :mod:`planner.carbon.recompute`). Reached through :mod:`planner.carbon.figures`."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from django.utils.safestring import SafeString

from dashboard.telemetry.models import DEVICE_ORDER, Run
from dashboard.web.figures import figure_json
from planner.carbon import charts
from planner.carbon.energy import run_energy_j
from planner.carbon.models import RunCarbon, RunCarbonHour, RunGpuCarbon, RunNodeCarbon
from planner.carbon.offsetting import policy_for, quote_run
from planner.carbon.state import CarbonState, notice, state_of
from planner.grid_carbon import equivalents

log = logging.getLogger(__name__)


def run_section(run: Run) -> dict[str, Any] | None:
    """Everything the carbon section shows, or ``None`` while the run has no energy.

    Without stored figures yet the section says they are being computed (``pending``); figures behind
    the run's energy or flagged stale are shown with a sentence saying so (``notice``). The section sits
    on the dashboard's run page: a failure here is logged and shown as a notice in the section instead
    of taking the energy figures down with it.
    """
    try:
        return _section(run)
    except Exception:
        log.exception("carbon section of run %s could not be read", run.pk)
        return {"error": True}


def run_hours(run: Run) -> list[RunCarbonHour]:
    """The run's stored carbon hours, by hour then node (empty while it has no figures)."""
    hours = RunCarbonHour.objects.filter(node_carbon__run_carbon__run=run).select_related("node_carbon__node")
    return sorted(hours, key=lambda h: (h.hour_utc, h.node_carbon.node.name))


def _section(run: Run) -> dict[str, Any] | None:
    stored = RunCarbon.objects.filter(run=run).first()
    energy_j = run_energy_j(run)
    state = state_of(stored, energy_j)
    if state is CarbonState.NO_ENERGY:
        return None
    if stored is None:
        return {"pending": True, "state": state, "notice": notice(state)}
    nodes = list(RunNodeCarbon.objects.filter(run_carbon=stored).select_related("node"))
    hours = list(
        RunCarbonHour.objects.filter(node_carbon__run_carbon=stored).select_related("node_carbon__node")
    )
    gpus = list(
        RunGpuCarbon.objects.filter(run_carbon=stored).select_related("run_gpu__gpu__node")
        .order_by(*(f"run_gpu__{key}" for key in DEVICE_ORDER))
    )
    by_node: dict[int, list[RunCarbonHour]] = defaultdict(list)
    for hour in hours:
        by_node[hour.node_carbon_id].append(hour)
    located = any(n.located_by != RunNodeCarbon.LocatedBy.WORLD for n in nodes)
    plots: list[tuple[str, SafeString]] = []
    # With no location at all every hour is the same world average: an hourly chart would suggest a
    # precision the figures do not have, so the section shows the figures and asks for a site instead.
    if located:
        series = [
            charts.NodeHours(
                node=n.node.name,
                hours=[h.hour_utc for h in by_node[n.pk]],
                emissions_g=[h.emissions_g for h in by_node[n.pk]],
                intensity_g_per_kwh=[h.intensity_g_per_kwh for h in by_node[n.pk]],
                fallback=[h.fallback for h in by_node[n.pk]],
                source=[h.source for h in by_node[n.pk]],
            )
            for n in nodes
        ]
        plots.append(("chart-carbon-hourly", figure_json(charts.emissions_by_hour(series))))
        plots.append(("chart-carbon-gpus", figure_json(charts.emissions_by_gpu(
            [f"{g.run_gpu.gpu.node.name}/gpu{g.run_gpu.gpu.index}" for g in gpus],
            [g.emissions_g for g in gpus], [g.market_emissions_g for g in gpus],
            [g.run_gpu.gpu.node.name for g in gpus],
        ))))
    offset = quote_run(stored, policy_for(run.project_id))
    fallback_hours = [h for h in hours if h.fallback]
    return {
        "stored": stored,
        "state": state,
        "notice": notice(state, covered_j=stored.energy_j, run_energy_j=energy_j),
        "nodes": nodes,
        "hours": sorted(hours, key=lambda h: (h.hour_utc, h.node_carbon.node.name)),
        "gpus": gpus,
        "plots": plots,
        "located": located,
        "effective_pue": stored.pue,
        "mean_intensity_g_per_kwh": (stored.emissions_g / stored.facility_energy_kwh)
        if stored.facility_energy_kwh else 0.0,
        "fallback_hours": fallback_hours,
        "fallback_reasons": sorted({h.reason for h in fallback_hours}),
        "offset": offset,
        "equivalents": equivalents(stored.emissions_g),
        "market_notes": sorted({note for n in nodes for note in n.market.get("notes", [])}),
        "market_excluded": sorted({x for n in nodes for x in n.market.get("excluded", [])}),
        "attribution": charts.ATTRIBUTION,
    }

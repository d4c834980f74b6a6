"""The carbon figures ``manage.py run_summary`` adds to a run's JSON: the stored ones, read only (tasks
compute them; ``manage.py recompute_carbon RUN`` does it at once). Reached through
:mod:`planner.carbon.figures`."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from dashboard.telemetry.models import Run
from planner.carbon.energy import run_energy_j
from planner.carbon.models import RunCarbon, RunCarbonHour, RunNodeCarbon
from planner.carbon.state import CarbonState, notice, state_of


def _hour(when: Any) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def carbon_summary(run: Run) -> dict[str, Any]:
    """``emissions_g`` (location-based), ``market_emissions_g``, ``pue`` and ``hourly``, plus details.

    ``hourly`` has one entry per UTC hour of the run. With several nodes the hour's energy and emissions
    are sums and its intensity is the energy-weighted mean (emissions ÷ facility energy); each node's
    own hours are under ``carbon.nodes``. ``carbon.status`` says whether the stored figures are current
    (``current``, ``behind``, ``stale``, ``pending``, ``no energy``; see :class:`CarbonState`).
    """
    stored = RunCarbon.objects.filter(run=run).first()
    energy_j = run_energy_j(run)
    state = state_of(stored, energy_j)
    if stored is None:
        # No energy: nothing was emitted. Pending: not known yet, so null rather than a zero.
        zero = 0.0 if state is CarbonState.NO_ENERGY else None
        return {"emissions_g": zero, "market_emissions_g": zero, "pue": None, "hourly": [],
                "carbon": {"status": state.value, "notice": notice(state)}}
    nodes = list(RunNodeCarbon.objects.filter(run_carbon=stored).select_related("node"))
    hours = list(RunCarbonHour.objects.filter(node_carbon__run_carbon=stored).order_by("hour_utc", "pk"))
    grouped: dict[Any, list[RunCarbonHour]] = defaultdict(list)
    by_node: dict[int, list[RunCarbonHour]] = defaultdict(list)
    for h in hours:
        grouped[h.hour_utc].append(h)
        by_node[h.node_carbon_id].append(h)
    hourly = []
    for when, parts in sorted(grouped.items()):
        facility_kwh = sum(p.facility_energy_kwh for p in parts)
        emissions_g = sum(p.emissions_g for p in parts)
        hourly.append({
            "hour": _hour(when),
            "energy_j": sum(p.energy_j for p in parts),
            "intensity_g_per_kwh": emissions_g / facility_kwh if facility_kwh else parts[0].intensity_g_per_kwh,
            "emissions_g": emissions_g,
            "market_emissions_g": sum(p.market_emissions_g for p in parts),
            "source": "; ".join(dict.fromkeys(p.source for p in parts)),
            "basis": "+".join(sorted({p.basis for p in parts})),
            "year": parts[0].year if len({p.year for p in parts}) == 1 else None,
            "fallback": any(p.fallback for p in parts),
            "step": "+".join(dict.fromkeys(p.step for p in parts)),
            "reason": "; ".join(dict.fromkeys(p.reason for p in parts)),
        })
    return {
        "emissions_g": stored.emissions_g,
        "market_emissions_g": stored.market_emissions_g,
        "pue": stored.pue if stored.energy_j else None,
        "hourly": hourly,
        "carbon": {
            "status": state.value,
            "notice": notice(state, covered_j=stored.energy_j, run_energy_j=energy_j),
            "computed_at": stored.computed_at.isoformat(),
            "energy_j": stored.energy_j,
            "facility_energy_kwh": stored.facility_energy_kwh,
            "fallback_hours": stored.fallback_hours,
            "mixed_basis": stored.mixed_basis,
            "notes": stored.notes,
            "nodes": {
                n.node.name: {
                    "where": n.where,
                    "zone": n.zone or None,
                    "located_by": n.located_by,
                    "site": n.site_name or None,
                    "note": n.located_note,
                    "pue": n.pue,
                    "energy_j": n.energy_j,
                    "emissions_g": n.emissions_g,
                    "market_emissions_g": n.market_emissions_g,
                    "market": n.market,
                    "hourly": [
                        {"hour": _hour(h.hour_utc), "energy_j": h.energy_j,
                         "intensity_g_per_kwh": h.intensity_g_per_kwh, "emissions_g": h.emissions_g,
                         "source": h.source, "step": h.step, "reason": h.reason}
                        for h in by_node[n.pk]
                    ],
                }
                for n in nodes
            },
        },
    }

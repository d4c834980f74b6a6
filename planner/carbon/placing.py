"""Where a node of a run drew its power from, and its PUE: the precedence the run page explains.

1. **site assignment** — an admin put the node on a site (zone or cloud region + PUE);
2. **agent flag** — the agent was started with ``--zone`` (a grid zone, preferred: it names the grid
   itself) or ``--region`` (a cloud region, mapped to its zone by the catalogue);
3. **project default** — the project's default zone or region;
4. **world average** — nothing known: Ember's world figure.

PUE comes from the site when there is one, else from the project's default PUE (1.0 unless set:
IT energy only). An unknown agent zone or region is skipped with a note, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboard.telemetry.models import Node, Run, RunNode
from planner.carbon.models import NodeSite, ProjectCarbon, RunNodeCarbon
from planner.grid_carbon import GridLocation, UnknownLocationError, locate

WORLD = GridLocation(query="world", zone=None, country_iso2=None, country_iso3=None)
LocatedBy = RunNodeCarbon.LocatedBy


@dataclass(frozen=True)
class Placement:
    """Where one node ran and how we know."""

    location: GridLocation
    where: str  # what was given ("SE-SE3", "aws:eu-north-1", "world")
    pue: float
    located_by: LocatedBy
    site_name: str = ""
    note: str = ""


def project_settings(project_id: int) -> ProjectCarbon:
    """The project's accounting defaults; an unsaved row of defaults when it never set any (reads
    never write: the sites page saves the row when someone changes them)."""
    return ProjectCarbon.objects.filter(project_id=project_id).first() or ProjectCarbon(project_id=project_id)


def _try(where: str) -> tuple[GridLocation | None, str]:
    try:
        return locate(where), ""
    except UnknownLocationError as exc:
        return None, str(exc)


def place_node(run: Run, node: Node, settings: ProjectCarbon) -> Placement:
    """The placement of ``node`` in ``run`` by the precedence above."""
    notes: list[str] = []
    assignment = NodeSite.objects.select_related("site").filter(node=node).first()
    if assignment is not None:
        site = assignment.site
        location, problem = _try(site.where)
        if location is not None:
            return Placement(location, site.where, site.pue, LocatedBy.SITE, site.name)
        notes.append(f"site {site.name}: {problem}")
    pue = settings.default_pue
    # The latest session that named a place wins (a restarted agent may have been corrected).
    sessions = RunNode.objects.filter(run=run, node=node).order_by("-opened_at", "-pk")
    flagged = [s for s in sessions if s.zone or s.region]
    if flagged:
        latest = flagged[0]
        others = {(s.zone, s.region) for s in flagged} - {(latest.zone, latest.region)}
        if others:
            notes.append("agent sessions named different places; the latest one is used")
        flags = ((latest.zone, LocatedBy.AGENT_ZONE, "zone"), (latest.region, LocatedBy.AGENT_REGION, "region"))
        for value, kind, flag in flags:
            if not value:
                continue
            location, problem = _try(value)
            if location is not None:
                return Placement(location, value, pue, kind, note="; ".join(notes))
            notes.append(f"agent {flag} {value!r}: {problem}")
    if settings.default_where:
        location, problem = _try(settings.default_where)
        if location is not None:
            return Placement(location, settings.default_where, pue, LocatedBy.PROJECT_DEFAULT, note="; ".join(notes))
        notes.append(f"project default {settings.default_where!r}: {problem}")
    notes.append("no site, agent zone or project default: world average used")
    return Placement(WORLD, "world", pue, LocatedBy.WORLD, note="; ".join(notes))

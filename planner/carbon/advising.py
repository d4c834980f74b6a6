"""Advice for a planned run: which allowed region and start time emit least, from stored data.

Candidates are the project's allowed regions (its preference list; when empty, its sites and every
catalogued cloud region). Each hour's intensity is predicted by the core library from stored forecast
rows, else a typical hour-of-day profile of stored hourly history, else the yearly figure; the
preferences (max g/kWh, min renewable / carbon-free %, data residency) exclude regions by their yearly
figures. The baseline is a past run's stored emissions (per node and hour, at each node's PUE) when the
advice is for that run as it was; else running now, without pausing, where the run is planned today.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from dashboard.projects.models import Project
from dashboard.telemetry.models import Run
from planner.carbon.models import RegionPreference, RunCarbon, RunCarbonHour, Site
from planner.carbon.placing import project_settings
from planner.carbon.stored import stored_records
from planner.grid_carbon import (
    Advice,
    Candidate,
    Constraints,
    Exclusion,
    Option,
    PlannedRun,
    UnknownLocationError,
    advise,
    cloud_regions,
    locate,
    rebase,
    screen,
    yearly_figure,
)
from planner.grid_carbon.hours import floor_to_hour
from planner.units import J_PER_KWH, S_PER_HOUR

HISTORY_DAYS = 365


def preference_for(project_id: int) -> RegionPreference:
    """The project's region preferences; unsaved defaults when it never set any (reads never write)."""
    return RegionPreference.objects.filter(project_id=project_id).first() or RegionPreference(project_id=project_id)


def parse_allowed(text: str) -> tuple[list[tuple[str, float | None]], list[str]]:
    """Lines of ``where [pue]`` → entries, and the problems (unknown places, bad PUEs) by line."""
    entries: list[tuple[str, float | None]] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        where, pue = parts[0], None
        if len(parts) > 2:
            problems.append(f"line {number}: expected 'zone-or-region [PUE]', got {raw.strip()!r}")
            continue
        if len(parts) == 2:
            try:
                pue = float(parts[1])
            except ValueError:
                problems.append(f"line {number}: PUE {parts[1]!r} is not a number")
                continue
            if not 1.0 <= pue <= 5.0:
                problems.append(f"line {number}: PUE {pue:g} is outside 1.0–5.0")
                continue
        try:
            locate(where)
        except UnknownLocationError as exc:
            problems.append(f"line {number}: {exc}")
            continue
        entries.append((where, pue))
    return entries, problems


def candidates_for(
    project: Project, preference: RegionPreference | None = None, *, candidate_pue: float | None = None
) -> tuple[list[Candidate], str]:
    """The candidates and a sentence saying where they come from (``preference``: the saved one by default).

    A candidate's PUE is the allowed list's, else the project's site there, else ``candidate_pue``, else the
    project default.
    """
    settings = project_settings(project.pk)
    default_pue = candidate_pue if candidate_pue is not None else settings.default_pue
    site_pue = {s.where.lower(): s.pue for s in Site.objects.filter(project=project)}
    preference = preference or preference_for(project.pk)
    entries, _ = parse_allowed(preference.allowed)
    if entries:
        found = [
            Candidate(where, pue if pue is not None else site_pue.get(where.lower(), default_pue))
            for where, pue in entries
        ]
        return found, f"the project's {len(found)} allowed region(s)"
    wheres = list(dict.fromkeys([*(s.where for s in Site.objects.filter(project=project)), *cloud_regions()]))
    found = [Candidate(w, site_pue.get(w.lower(), default_pue)) for w in wheres]
    return found, (
        f"no allowed regions set: the project's sites and all {len(cloud_regions())} catalogued cloud regions"
    )


def constraints_for(project: Project, preference: RegionPreference | None = None) -> Constraints:
    p = preference or preference_for(project.pk)
    return Constraints(
        max_intensity_g_per_kwh=p.max_intensity_g_per_kwh,
        min_renewable_pct=p.min_renewable_pct,
        min_cfe_pct=p.min_cfe_pct,
        residency_group=p.residency_group or None,
    )


@dataclass(frozen=True)
class Preview:
    """Which candidate regions pass a project's preferences, and why the others do not."""

    passing: list[str]
    excluded: list[Exclusion]
    origin: str


def preview(project: Project, preference: RegionPreference) -> Preview:
    """What ``preference`` (saved or not) lets advice consider, checked as advice checks it."""
    candidates, origin = candidates_for(project, preference)
    passing, excluded = screen(candidates, constraints_for(project, preference))
    return Preview([location.label for _, location, _ in passing], excluded, origin)


@dataclass(frozen=True)
class PastRun:
    """What a past run tells the planner: its energy, duration, where it ran and what it emitted there.

    ``pue`` is the run's own, weighted by energy (facility energy ÷ IT energy over its nodes);
    ``emissions_g`` is its stored location-based figure, summed per node and hour at each node's PUE.
    """

    energy_kwh: float
    duration_h: float
    where: str
    pue: float
    emissions_g: float
    facility_kwh: float
    hours_utc: tuple[datetime, ...]
    nodes: tuple[tuple[str, str, float, float], ...]
    """Per node: its name, where it ran, its PUE and its stored emissions (g)."""


def from_past_run(run: Run) -> PastRun | None:
    """What the run's stored figures say (``None`` while it has none: no energy, or being computed)."""
    stored = RunCarbon.objects.filter(run=run).first()
    if stored is None or stored.energy_j <= 0:
        return None
    nodes = list(stored.nodes.select_related("node").order_by("-energy_j"))
    first = nodes[0] if nodes else None
    hours = tuple(sorted(set(
        RunCarbonHour.objects.filter(node_carbon__run_carbon=stored).values_list("hour_utc", flat=True)
    )))
    span_h = float(max(len(hours), 1))
    if run.started_at and run.ended_at and run.ended_at > run.started_at:
        span_h = (run.ended_at - run.started_at).total_seconds() / S_PER_HOUR
    energy_kwh = stored.energy_j / J_PER_KWH
    return PastRun(
        energy_kwh=energy_kwh,
        duration_h=max(round(span_h, 2), 0.01),
        where=first.where if first and first.where != "world" else "",
        pue=round(stored.facility_energy_kwh / energy_kwh, 3) if energy_kwh > 0 else 1.0,
        emissions_g=stored.emissions_g,
        facility_kwh=stored.facility_energy_kwh,
        hours_utc=hours,
        nodes=tuple((n.node.name, n.where, n.pue, n.emissions_g) for n in nodes),
    )


def measured_baseline(past: PastRun) -> Option:
    """The past run as it ran, for advice to compare against: its stored emissions, per node and hour."""
    places = ", ".join(dict.fromkeys(where for _, where, _, _ in past.nodes)) or "unknown"
    try:
        figure = yearly_figure(locate(past.where or "world"))
    except UnknownLocationError:
        figure = yearly_figure(locate("world"))
    start = past.hours_utc[0] if past.hours_utc else default_start()
    return Option(
        where=f"as it ran ({places})", zone=None, pue=past.pue, start_utc=start, hours_utc=past.hours_utc,
        predicted_emissions_g=past.emissions_g,
        mean_intensity_g_per_kwh=past.emissions_g / past.facility_kwh if past.facility_kwh > 0 else 0.0,
        saving_g=0.0, saving_pct=0.0, basis_used="stored",
        basis_detail=f"its stored emissions: {len(past.nodes)} node(s) × {len(past.hours_utc)} hour(s)",
        intensity_bases=(), yearly=figure, per_start=(), is_current_region=True,
    )


def default_start(now: datetime | None = None) -> datetime:
    """The next whole UTC hour: advice starts there."""
    return floor_to_hour(now or timezone.now()) + timedelta(hours=1)


def get_advice(
    project: Project,
    *,
    energy_kwh: float,
    duration_h: float,
    interruptible: bool,
    earliest_start_utc: datetime,
    latest_start_utc: datetime,
    current_where: str,
    current_pue: float,
    candidate_pue: float | None = None,
    measured: PastRun | None = None,
) -> tuple[Advice, str]:
    """Rank the project's allowed regions and start times; also say where the candidates came from.

    ``candidate_pue`` is the PUE of candidates without one of their own (allowed list, site); ``measured``,
    a past run whose stored emissions replace the predicted "run now where it runs today" baseline.
    """
    candidates, origin = candidates_for(project, candidate_pue=candidate_pue)
    planned = PlannedRun(
        energy_kwh=energy_kwh,
        duration_h=duration_h,
        interruptible=interruptible,
        earliest_start_utc=earliest_start_utc,
        latest_start_utc=latest_start_utc,
        current=Candidate(current_where, current_pue),
    )
    zones: set[str] = set()
    for where in [current_where, *(c.where for c in candidates)]:
        try:
            zone = locate(where).zone
        except UnknownLocationError:
            continue  # advise() lists it as excluded with the reason
        if zone:
            zones.add(zone)
    deadline = latest_start_utc + timedelta(hours=duration_h + 1)
    forecasts = stored_records(
        zones, earliest_start_utc, deadline, project_id=project.pk, hourly_only=True, forecasts=True
    )
    history = stored_records(
        zones, earliest_start_utc - timedelta(days=HISTORY_DAYS), earliest_start_utc, project_id=project.pk,
        hourly_only=True, forecasts=False,
    )
    advice = advise(planned, candidates, constraints_for(project), forecasts=forecasts, history=history)
    return (rebase(advice, measured_baseline(measured)) if measured else advice), origin

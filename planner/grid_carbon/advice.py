"""Carbon-aware advice for a planned run: where and when to train.

Inputs: the run's energy estimate and duration, whether it can pause, the candidate regions (each
with its PUE), the preferences that constrain them, and the window of allowed start times. For each
candidate that meets the preferences, emissions are predicted for every start time::

    predicted_emissions_g = Σ_hours (energy_kwh / duration_h × hour weight) × PUE × intensity(hour)

with the hourly intensity taken, per hour, from the first of:

1. a **forecast** the caller supplies (Electricity Maps, UK fw48h, WattTime…);
2. a **typical hour-of-day profile** built from imported hourly history of the zone;
3. the zone's **yearly** figure (flat: no gain from moving in time).

A non-interruptible run takes the best contiguous window; an interruptible run takes the cleanest
hours before the deadline (:mod:`windows`). Candidates are ranked by predicted emissions; each option
shows the saving against running *now* in the *current* region. Preferences are checked against the
zone's yearly figure (:func:`reference.yearly_figure`), and every excluded region is listed with the
reason, e.g. ``aws:us-east-1: 403 g/kWh > max 300``.

Spatial shifting usually dominates temporal shifting (Sukprasert et al., 2023); comparing a forecast
of one basis (direct) with a yearly figure of another (lifecycle) can overstate savings — the advice
notes it when that happens.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from planner.grid_carbon.emissions import check_pue
from planner.grid_carbon.hourly import HourlyMiss, HourlyTable
from planner.grid_carbon.hours import ONE_HOUR, require_utc_hour
from planner.grid_carbon.profiles import HourOfDayProfile, typical_profile
from planner.grid_carbon.records import Basis, IntensityFigure, IntensityRecord
from planner.grid_carbon.reference import short_source, yearly_figure
from planner.grid_carbon.regions import GridLocation, UnknownLocationError, locate
from planner.grid_carbon.windows import cheapest_hours, contiguous_sums, hour_weights

HourSource = Literal["forecast", "typical_profile", "yearly"]
MAX_WINDOW_HOURS = 24 * 14


@dataclass(frozen=True, slots=True)
class Candidate:
    """A place the run could go: a region id, zone or country code, and that site's PUE."""

    where: str
    pue: float = 1.0


@dataclass(frozen=True, slots=True)
class Constraints:
    """Region preferences; ``None`` means "no constraint"."""

    max_intensity_g_per_kwh: float | None = None
    min_renewable_pct: float | None = None
    min_cfe_pct: float | None = None
    residency_group: str | None = None
    """``EU``, ``EEA`` or an ISO2 country code the data must stay in."""


@dataclass(frozen=True, slots=True)
class PlannedRun:
    """What is being planned: energy, duration, pausability, the start window and where it runs now."""

    energy_kwh: float
    duration_h: float
    interruptible: bool
    earliest_start_utc: datetime
    latest_start_utc: datetime
    current: Candidate


@dataclass(frozen=True, slots=True)
class StartPrediction:
    """Predicted emissions if the run may start at ``start_utc`` (interruptible: the cleanest hours after)."""

    start_utc: datetime
    emissions_g: float
    hours_utc: tuple[datetime, ...]


@dataclass(frozen=True, slots=True)
class Option:
    """The best plan in one region, and how it compares with running now in the current region."""

    where: str
    zone: str | None
    pue: float
    start_utc: datetime
    hours_utc: tuple[datetime, ...]
    predicted_emissions_g: float
    mean_intensity_g_per_kwh: float
    saving_g: float
    saving_pct: float
    basis_used: str
    """``forecast``, ``typical_profile`` or ``yearly`` — or a ``+``-joined mix, detailed in ``basis_detail``."""
    basis_detail: str
    intensity_bases: tuple[Basis, ...]
    yearly: IntensityFigure
    per_start: tuple[StartPrediction, ...]
    is_current_region: bool


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A candidate left out, and why."""

    where: str
    reason: str


@dataclass(frozen=True, slots=True)
class Advice:
    """Ranked options (cleanest first), the do-nothing baseline, exclusions and caveats."""

    options: tuple[Option, ...]
    baseline: Option
    excluded: tuple[Exclusion, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Series:
    hours: tuple[datetime, ...]
    intensity: tuple[float, ...]
    sources: tuple[HourSource, ...]
    bases: tuple[Basis, ...]
    marginal: bool


def check_constraints(
    location: GridLocation, figure: IntensityFigure, constraints: Constraints
) -> str | None:
    """Why ``location`` fails ``constraints`` (checked against its yearly ``figure``), or ``None``."""
    label = location.label
    cite = f"{short_source(figure.source)} {figure.year} yearly for {figure.key}"
    limit = constraints.max_intensity_g_per_kwh
    if limit is not None and figure.intensity_g_per_kwh > limit:
        return f"{label}: {figure.intensity_g_per_kwh:.0f} g/kWh > max {limit:g} ({cite})"
    for wanted, have, name in (
        (constraints.min_renewable_pct, figure.renewable_pct, "renewable"),
        (constraints.min_cfe_pct, figure.cfe_pct, "carbon-free"),
    ):
        if wanted is None:
            continue
        if have is None:
            return f"{label}: {name} share unknown ({cite}); cannot confirm ≥ {wanted:g} %"
        if have < wanted:
            return f"{label}: {name} {have:.0f} % < min {wanted:g} % ({cite})"
    group = constraints.residency_group
    if group is not None and group.upper() not in location.residency_groups:
        country = location.country_iso2 or "an unknown country"
        return f"{label}: in {country}, outside data-residency group {group}"
    return None


def advise(
    run: PlannedRun,
    candidates: Sequence[Candidate],
    constraints: Constraints | None = None,
    *,
    forecasts: Iterable[IntensityRecord] = (),
    history: Iterable[IntensityRecord] = (),
    year: int | None = None,
) -> Advice:
    """Rank the allowed candidates and start times for ``run`` by predicted emissions.

    ``forecasts`` and ``history`` hold records for any zones (importer or provider output); history is
    turned into hour-of-day profiles per zone. ``year`` picks the yearly figures (newest by default).
    """
    constraints = constraints or Constraints()
    start = require_utc_hour(run.earliest_start_utc, what="earliest_start_utc")
    latest = require_utc_hour(run.latest_start_utc, what="latest_start_utc")
    _check_run(run)
    weights = hour_weights(run.duration_h)
    n_starts = int((latest - start) / ONE_HOUR) + 1
    horizon = [start + i * ONE_HOUR for i in range(n_starts - 1 + len(weights))]
    forecast_table = HourlyTable(forecasts, name="forecast")
    history_by_zone: dict[str, list[IntensityRecord]] = {}
    for record in history:
        history_by_zone.setdefault(record.zone, []).append(record)
    months = sorted({h.month for h in horizon})
    energy_per_hour_kwh = run.energy_kwh / run.duration_h

    def plan(where: GridLocation, pue: float, figure: IntensityFigure, *, baseline: bool) -> Option:
        series = _series(where, horizon, figure, forecast_table, history_by_zone, months)
        kwh_per_hour = energy_per_hour_kwh * pue
        if baseline:  # "run now, without pausing, where it runs today"
            per_start = _per_start(series, weights, n_starts, False, kwh_per_hour)
            best = per_start[0]
        else:
            per_start = _per_start(series, weights, n_starts, run.interruptible, kwh_per_hour)
            best = min(per_start, key=lambda p: (p.emissions_g, p.start_utc))
        return _option(where, pue, figure, series, best, per_start, run.energy_kwh * pue)

    current_location = locate(run.current.where)
    baseline = plan(
        current_location, check_pue(run.current.pue), yearly_figure(current_location, year), baseline=True
    )
    baseline = replace(baseline, is_current_region=True)

    options: list[Option] = []
    passing, excluded = screen(candidates, constraints, year)
    for candidate, location, figure in passing:
        option = plan(location, check_pue(candidate.pue), figure, baseline=False)
        saving_g = baseline.predicted_emissions_g - option.predicted_emissions_g
        saving_pct = (
            100.0 * saving_g / baseline.predicted_emissions_g if baseline.predicted_emissions_g > 0 else 0.0
        )
        options.append(
            replace(
                option,
                saving_g=saving_g,
                saving_pct=saving_pct,
                is_current_region=location.label == current_location.label,
            )
        )

    options.sort(key=lambda o: (o.predicted_emissions_g, not o.is_current_region, o.start_utc))
    return Advice(tuple(options), baseline, tuple(excluded), tuple(_notes(options, baseline)))


def rebase(advice: Advice, baseline: Option) -> Advice:
    """``advice`` with its savings measured against ``baseline`` (e.g. what a past run really emitted)."""
    base_g = baseline.predicted_emissions_g
    options = tuple(
        replace(o, saving_g=base_g - o.predicted_emissions_g,
                saving_pct=100.0 * (base_g - o.predicted_emissions_g) / base_g if base_g > 0 else 0.0)
        for o in advice.options
    )
    return replace(advice, options=options, baseline=baseline, notes=tuple(_notes(options, baseline)))


def screen(
    candidates: Sequence[Candidate], constraints: Constraints, year: int | None = None
) -> tuple[list[tuple[Candidate, GridLocation, IntensityFigure]], list[Exclusion]]:
    """The candidates that pass ``constraints`` (once per place, with its yearly figure), and the rest with why."""
    passing: list[tuple[Candidate, GridLocation, IntensityFigure]] = []
    excluded: list[Exclusion] = []
    seen: set[str] = set()
    for candidate in candidates:
        try:
            location = locate(candidate.where)
        except UnknownLocationError as exc:
            excluded.append(Exclusion(candidate.where, str(exc)))
            continue
        if location.label in seen:
            continue
        seen.add(location.label)
        figure = yearly_figure(location, year)
        problem = check_constraints(location, figure, constraints)
        if problem is None:
            passing.append((candidate, location, figure))
        else:
            excluded.append(Exclusion(location.label, problem))
    return passing, excluded


def _check_run(run: PlannedRun) -> None:
    if not math.isfinite(run.energy_kwh) or run.energy_kwh < 0:
        raise ValueError(f"energy_kwh must be finite and ≥ 0, got {run.energy_kwh!r}")
    if not math.isfinite(run.duration_h) or run.duration_h <= 0:
        raise ValueError(f"duration_h must be positive, got {run.duration_h!r}")
    if run.latest_start_utc < run.earliest_start_utc:
        raise ValueError("latest_start_utc is before earliest_start_utc")
    if run.latest_start_utc - run.earliest_start_utc > timedelta(hours=MAX_WINDOW_HOURS):
        raise ValueError(f"the start window is longer than {MAX_WINDOW_HOURS} hours")


def _series(
    location: GridLocation,
    horizon: Sequence[datetime],
    figure: IntensityFigure,
    forecasts: HourlyTable,
    history_by_zone: dict[str, list[IntensityRecord]],
    months: Sequence[int],
) -> _Series:
    zone = location.zone
    profile: HourOfDayProfile | None = None
    history = history_by_zone.get(zone, []) if zone is not None else []
    if zone is not None and history:
        profile = typical_profile(history, zone, months=months) or typical_profile(history, zone)
    values: list[float] = []
    sources: list[HourSource] = []
    bases: list[Basis] = []
    marginal = False
    for hour in horizon:
        found = forecasts.lookup(zone, hour) if zone is not None else HourlyMiss("no zone")
        if isinstance(found, IntensityRecord) and found.granularity == "hour":
            values.append(found.intensity_g_per_kwh)
            sources.append("forecast")
            bases.append(found.basis)
            marginal = marginal or found.signal == "marginal"
        elif profile is not None and hour.hour in profile.intensity_by_hour:
            values.append(profile.intensity_by_hour[hour.hour])
            sources.append("typical_profile")
            bases.append(profile.basis)
            marginal = marginal or profile.signal == "marginal"
        else:
            values.append(figure.intensity_g_per_kwh)
            sources.append("yearly")
            bases.append(figure.basis)
    return _Series(tuple(horizon), tuple(values), tuple(sources), tuple(bases), marginal)


def _per_start(
    series: _Series, weights: Sequence[float], n_starts: int, interruptible: bool, kwh_per_hour: float
) -> list[StartPrediction]:
    predictions: list[StartPrediction] = []
    if interruptible:
        for s in range(n_starts):
            total, chosen = cheapest_hours(series.intensity, weights, s)
            predictions.append(
                StartPrediction(series.hours[s], total * kwh_per_hour, tuple(series.hours[i] for i in chosen))
            )
        return predictions
    sums = contiguous_sums(series.intensity, weights, n_starts)
    for s, total in enumerate(sums):
        hours = tuple(series.hours[s : s + len(weights)])
        predictions.append(StartPrediction(series.hours[s], total * kwh_per_hour, hours))
    return predictions


def _option(
    location: GridLocation,
    pue: float,
    figure: IntensityFigure,
    series: _Series,
    best: StartPrediction,
    per_start: Sequence[StartPrediction],
    facility_kwh: float,
) -> Option:
    index = {hour: i for i, hour in enumerate(series.hours)}
    used = [index[h] for h in best.hours_utc]
    counts = Counter(series.sources[i] for i in used)
    order: tuple[HourSource, ...] = ("forecast", "typical_profile", "yearly")
    present = [name for name in order if counts.get(name)]
    detail = ", ".join(f"{name} {counts[name]} h" for name in present)
    if series.marginal:
        detail += " (includes marginal-signal values)"
    return Option(
        where=location.label,
        zone=location.zone,
        pue=pue,
        start_utc=best.start_utc,
        hours_utc=best.hours_utc,
        predicted_emissions_g=best.emissions_g,
        mean_intensity_g_per_kwh=best.emissions_g / facility_kwh if facility_kwh > 0 else 0.0,
        saving_g=0.0,
        saving_pct=0.0,
        basis_used="+".join(present),
        basis_detail=detail,
        intensity_bases=tuple(sorted({series.bases[i] for i in used})),
        yearly=figure,
        per_start=tuple(per_start),
        is_current_region=False,
    )


def _notes(options: Sequence[Option], baseline: Option) -> list[str]:
    notes: list[str] = []
    bases = {b for option in [*options, baseline] for b in option.intensity_bases}
    if len(bases) > 1:
        notes.append(
            "options mix lifecycle and direct intensities; savings between them are overstated or understated "
            "by the difference in method"
        )
    if any("marginal" in option.basis_detail for option in options):
        notes.append(
            "some predictions use marginal (WattTime) rates: good for choosing times, not emissions estimates"
        )
    if options and all(o.basis_used == "yearly" for o in options):
        notes.append(
            "no forecast or hourly history supplied: only the choice of region changes the prediction"
        )
    return notes

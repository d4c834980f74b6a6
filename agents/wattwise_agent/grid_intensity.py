"""Emissions without the app: a run's energy times the yearly grid intensity of where it ran, offline.

The agent ships the yearly figures the app's carbon accounting falls back on when it has no hourly data
for a zone (``data/yearly_intensity.json``, generated from the app's ``planner.grid_carbon`` data by
``python -m planner.grid_carbon.agent_table``; Electricity Maps (ODbL), Ember and Our World in Data,
attributed in the file). The rule is the app's, for a node placed by its agent's ``zone``/``region``
(no site assigned in the app), at the app's default PUE of 1.0 (GPU energy only)::

    emissions_g = Σ over UTC years y: energy_j[y] / 3 600 000 × intensity_g_per_kwh(place, y)

where an interval's energy counts in the year of the reading that ends it (the app files it in that
reading's minute), and the intensity is the first of: the Electricity Maps yearly figure of the zone (or
of the nearest zone enclosing it: ``GB-CI-13`` → ``GB``) for year y, else the newest earlier year, else
the earliest; the country's yearly figure (Ember, else OWID); the world average. The zone wins over the
region; a region the catalogue does not know counts as the world average (what the app does for a
project without a default place). ``tests/planner/grid_carbon/test_agent_intensity_table.py`` checks
this table and these look-ups against the app's library for every zone, region and country.

What the app computes differs only where it knows more: hourly intensity it imported or polled for the
zone, a site (and its PUE) assigned to the node, or a project default PUE.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from wattwise_agent.wire import ZONE_PATTERN

# The steps of the app's fallback chain that need no hourly data (planner.grid_carbon.resolve).
STEP_ZONE_YEARLY = "zone_yearly"
STEP_COUNTRY_YEARLY = "country_yearly"
STEP_WORLD = "world"


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    """The shipped table (read once)."""
    text = resources.files("wattwise_agent").joinpath("data", "yearly_intensity.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def j_per_kwh() -> float:
    return float(table()["j_per_kwh"])


@lru_cache(maxsize=1)
def _zones_by_upper() -> dict[str, str]:
    return {zone.upper(): zone for zone in reversed(list(table()["zones"]))}


def _known_zone(zone: str) -> str | None:
    return _zones_by_upper().get(zone.upper())


def enclosing_zone(zone: str) -> str | None:
    """The zone itself if the table has it, else the nearest enclosing zone it has (``GB-CI-13`` → ``GB``)."""
    parts = zone.split("-")
    while parts:
        known = _known_zone("-".join(parts))
        if known is not None:
            return known
        parts.pop()
    return None


class UnknownPlace(ValueError):
    """Not a catalogued cloud region, nor a zone or country code."""


@dataclass(frozen=True)
class Place:
    """Where a node ran, as the app locates it: the zone whose figures apply and the country's ISO3 code."""

    where: str  # what was given
    zone: str | None
    country_iso3: str | None


def locate(where: str) -> Place:
    """A region id (``aws:eu-north-1``), zone (``SE-SE3``) or ISO country code, as the app's ``locate`` reads it."""
    data = table()
    text = where.strip()
    if not text:
        raise UnknownPlace("empty location")
    if ":" in text:
        provider = text.split(":", 1)[0].lower()
        region = data["regions"].get(text.lower()) if provider in data["providers"] else None
        if region is None:
            raise UnknownPlace(f"unknown cloud region {where!r}; known ids look like 'aws:eu-north-1'")
        return Place(text, region["zone"], data["iso2_to_iso3"].get(region["country"]))
    zone = _known_zone(text)
    if zone is not None:
        return Place(text, zone, data["iso2_to_iso3"].get(zone.split("-", 1)[0]))
    if len(text) == 3 and text.upper() in data["iso3_to_iso2"]:
        iso2 = data["iso3_to_iso2"][text.upper()]
        return Place(text, iso2 if _known_zone(iso2) else None, text.upper())
    if not ZONE_PATTERN.match(text):
        raise UnknownPlace(f"{where!r} is not a cloud region, zone or ISO country code")
    return Place(text, text, data["iso2_to_iso3"].get(text.split("-", 1)[0].upper()))


@dataclass(frozen=True)
class YearlyIntensity:
    """The intensity the app's fallback chain gives a place for an hour of ``year`` without hourly data."""

    g_per_kwh: float
    step: str  # zone_yearly, country_yearly or world
    key: str  # the zone, country (ISO3) or "WORLD" whose figure it is
    data_year: int  # the figure's year (the nearest available when ``year`` is not)
    source: str


def _pick_year(years: list[int], wanted: int) -> int:
    """The app's rule (planner.grid_carbon.reference.pick_year): the year itself, else the newest earlier,
    else the earliest later."""
    if wanted in years:
        return wanted
    earlier = [y for y in years if y < wanted]
    return max(earlier) if earlier else min(years)


def yearly_intensity(place: Place, year: int) -> YearlyIntensity:
    data = table()
    if place.zone is not None:
        known = enclosing_zone(place.zone)
        if known is not None:
            by_year = data["zones"][known]
            chosen = _pick_year(sorted(int(y) for y in by_year), year)
            return YearlyIntensity(float(by_year[str(chosen)]), STEP_ZONE_YEARLY, known, chosen, data["zone_source"])
    if place.country_iso3 is not None:
        country = data["countries"].get(place.country_iso3)
        if country is not None:
            return YearlyIntensity(float(country["g_per_kwh"]), STEP_COUNTRY_YEARLY, place.country_iso3,
                                   int(country["year"]), str(country["source"]))
    world = data["world"]
    return YearlyIntensity(float(world["g_per_kwh"]), STEP_WORLD, "WORLD", int(world["year"]), str(world["source"]))


@dataclass(frozen=True)
class YearEmissions:
    year: int  # UTC year of the readings
    energy_j: float
    intensity: YearlyIntensity
    emissions_g: float


@dataclass(frozen=True)
class Emissions:
    """A run's location-based emissions from yearly figures (the app's method without hourly data)."""

    where: str  # the zone or region the agent was given
    zone: str | None  # the zone whose figures were used (None: a country's or the world's)
    years: tuple[YearEmissions, ...]
    pue: float = 1.0
    note: str = ""

    @property
    def emissions_g(self) -> float:
        return sum(y.emissions_g for y in self.years)

    def as_dict(self) -> dict[str, Any]:
        return {
            "emissions_g": self.emissions_g,
            "where": self.where,
            "zone": self.zone,
            "basis": "yearly",
            "pue": self.pue,
            "years": [
                {"year": y.year, "energy_j": y.energy_j, "intensity_g_per_kwh": y.intensity.g_per_kwh,
                 "step": y.intensity.step, "figure": y.intensity.key, "figure_year": y.intensity.data_year,
                 "source": y.intensity.source, "emissions_g": y.emissions_g}
                for y in self.years
            ],
            "note": self.note,
            "attribution": table()["attribution"],
        }


@dataclass(frozen=True)
class RunPlace:
    """The place a stream's emissions are reckoned for: its zone, else its region (the app's precedence)."""

    where: str
    place: Place
    note: str = ""


def run_place(zone: str | None, region: str | None) -> RunPlace | None:
    """Where the app places a node from its agent's ``zone``/``region`` (None: neither was given)."""
    notes: list[str] = []
    for value in (zone, region):
        if not value:
            continue
        try:
            return RunPlace(value, locate(value), "; ".join(notes))
        except UnknownPlace as exc:
            notes.append(str(exc))
    if not notes:
        return None
    # The app then uses the project's default place if it has one, else the world average.
    notes.append("the world average is used, as the app does for a project without a default place")
    return RunPlace(region or zone or "", Place("world", None, None), "; ".join(notes))


def emissions(place: RunPlace, energy_j_by_year: Mapping[int, float]) -> Emissions:
    """Emissions of ``{UTC year: energy_j}`` at ``place``, PUE 1.0."""
    per_kwh = j_per_kwh()
    years = []
    for year, energy_j in sorted(energy_j_by_year.items()):
        intensity = yearly_intensity(place.place, year)
        years.append(YearEmissions(year, energy_j, intensity, energy_j / per_kwh * intensity.g_per_kwh))
    zone = place.place.zone and enclosing_zone(place.place.zone)
    return Emissions(place.where, zone or None, tuple(years), note=place.note)

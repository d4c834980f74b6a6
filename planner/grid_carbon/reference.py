"""Look-ups into the embedded yearly reference data.

These are the figures the fallback chain uses when no time-stamped data covers an hour, and the ones
region preferences are checked against. Every answer is an :class:`IntensityFigure` naming its source,
year, basis (lifecycle or direct) and granularity (always ``year`` here).

Sources, in the order the fallback chain uses them:

1. **Electricity Maps yearly zone data** (2021–2025, ODbL): lifecycle, *consumption-based* (imports
   are counted at the intensity of the zone they come from), with renewable % and carbon-free %.
2. **Ember yearly country averages** (CC BY-SA 4.0): lifecycle (Ember includes upstream methane,
   supply chain and manufacturing), *production-based* (generation inside the country only).
3. **Our World in Data** country data (via CodeCarbon): Ember-derived, used for countries Ember's file
   lacks, and for country renewable / low-carbon shares.
4. **World**: Ember's "World" average.

Google's own region figures (``region-carbon-info``) are offered by :func:`google_region_yearly` for
comparison; they are not in the chain because mixing providers' methods would make regions from
different clouds incomparable (from 2021 Google reports *operational* = direct intensity).
"""

from __future__ import annotations

from collections.abc import Iterable

from planner.grid_carbon.datasets import (
    country_codes,
    electricity_maps_yearly,
    ember_countries,
    google_regions,
    iso3_to_iso2,
    owid_countries,
)
from planner.grid_carbon.records import IntensityFigure
from planner.grid_carbon.regions import GridLocation, enclosing_zone, locate

SOURCE_EM_YEARLY = "Electricity Maps yearly (ODbL, via co2.js)"
SOURCE_EMBER = "Ember yearly (CC BY-SA 4.0, via co2.js)"
SOURCE_OWID = "Our World in Data (CC BY 4.0, via CodeCarbon)"
SOURCE_GOOGLE = "Google Cloud region-carbon-info (Apache-2.0)"


_SHORT_NAMES = {
    SOURCE_EM_YEARLY: "Electricity Maps",
    SOURCE_EMBER: "Ember",
    SOURCE_OWID: "OWID",
    SOURCE_GOOGLE: "Google",
}


def short_source(source: str) -> str:
    """A short name for a source in reasons ("Electricity Maps" for the full ODbL source line)."""
    return _SHORT_NAMES.get(source, source)


def pick_year(available: Iterable[int], wanted: int | None) -> tuple[int, str]:
    """Choose the data year for ``wanted``: itself, else the newest earlier, else the earliest later.

    Returns the year and a note explaining any substitution (empty when the wanted year was found).
    """
    years = sorted(set(available))
    if not years:
        raise ValueError("no years available")
    if wanted is None:
        return years[-1], ""
    if wanted in years:
        return wanted, ""
    earlier = [year for year in years if year < wanted]
    if earlier:
        return earlier[-1], f"asked for {wanted}; {earlier[-1]} is the newest year available"
    return years[0], f"asked for {wanted}; {years[0]} is the earliest year available"


def zone_yearly(zone: str, year: int | None = None) -> IntensityFigure | None:
    """Electricity Maps yearly figure for ``zone`` (``DE``, ``SE-SE3``, ``US-MIDA-PJM``…), or ``None``."""
    data = electricity_maps_yearly()
    present = [y for y, zones in data.items() if zone in zones]
    if not present:
        return None
    chosen, note = pick_year(present, year)
    row = data[chosen][zone]
    return IntensityFigure(
        key=zone,
        level="zone",
        intensity_g_per_kwh=row.intensity_g_per_kwh,
        source=SOURCE_EM_YEARLY,
        year=chosen,
        basis="lifecycle",
        mix="consumption",
        renewable_pct=row.renewable_pct,
        cfe_pct=row.cfe_pct,
        name=row.name,
        note=note,
    )


def _iso3(country: str) -> str | None:
    text = country.strip().upper()
    if len(text) == 2:
        code = country_codes().get(text)
        return code.iso3 if code else None
    if len(text) == 3 and (text in iso3_to_iso2() or text in ember_countries() or text in owid_countries()):
        return text
    return None


def country_yearly(country: str, year: int | None = None) -> IntensityFigure | None:
    """Yearly average for a country given as ISO2 (``DE``) or ISO3 (``DEU``), or ``None``.

    Ember first (newest data, one year per country in the shipped file), else OWID. The ``year``
    argument does not choose among years (each country has one) but a mismatch is explained in ``note``.
    Renewable and low-carbon (≈ carbon-free) shares come from OWID, as Ember's file has none.
    """
    iso3 = _iso3(country)
    if iso3 is None:
        return None
    owid = owid_countries().get(iso3)
    ember = ember_countries().get(iso3)
    row, source = (ember, SOURCE_EMBER) if ember is not None else (owid, SOURCE_OWID)
    if row is None:
        return None
    notes = []
    if year is not None and year != row.year:
        notes.append(f"asked for {year}; {row.year} is the only year shipped for {iso3}")
    if owid is not None and ember is not None and owid.renewable_pct is not None:
        notes.append(f"renewable and low-carbon shares from OWID {owid.year}")
    return IntensityFigure(
        key=iso3,
        level="country",
        intensity_g_per_kwh=row.intensity_g_per_kwh,
        source=source,
        year=row.year,
        basis="lifecycle",
        mix="production",
        renewable_pct=owid.renewable_pct if owid else None,
        cfe_pct=owid.low_carbon_pct if owid else None,
        name=row.name,
        note="; ".join(notes),
    )


def world_yearly() -> IntensityFigure:
    """Ember's world average (the last step of every fallback chain)."""
    row = ember_countries()["World"]
    return IntensityFigure(
        key="WORLD",
        level="world",
        intensity_g_per_kwh=row.intensity_g_per_kwh,
        source=SOURCE_EMBER,
        year=row.year,
        basis="lifecycle",
        mix="production",
        name="World",
    )


def google_region_yearly(region: str, year: int | None = None) -> IntensityFigure | None:
    """Google's own figure for a GCP region (``gcp:europe-west1`` or ``europe-west1``), or ``None``.

    ``cfe_pct`` is Google CFE: the hourly-matched carbon-free share *including Google's own
    renewable purchases* — a market-style metric, unlike Electricity Maps' grid carbon-free %.
    """
    code = region.split(":", 1)[1] if region.lower().startswith("gcp:") else region
    data = google_regions()
    present = [y for y, rows in data.items() if code in rows and rows[code].intensity_g_per_kwh is not None]
    if not present:
        return None
    chosen, note = pick_year(present, year)
    row = data[chosen][code]
    assert row.intensity_g_per_kwh is not None  # filtered above
    return IntensityFigure(
        key=f"gcp:{code}",
        level="region",
        intensity_g_per_kwh=row.intensity_g_per_kwh,
        source=SOURCE_GOOGLE,
        year=chosen,
        basis=row.basis,
        mix="consumption",
        cfe_pct=row.google_cfe_pct,
        name=row.location,
        note=note,
    )


def yearly_figure(where: str | GridLocation, year: int | None = None) -> IntensityFigure:
    """The best yearly figure for a region, zone or country: zone → country → world.

    This is the yearly part of the fallback chain, the same figure :mod:`resolve` uses for an hour
    with no hourly data, and the one region preferences (max g/kWh, min renewable %) are checked
    against.
    """
    location = locate(where)
    known = enclosing_zone(location.zone) if location.zone else None
    if known is not None:
        figure = zone_yearly(known, year)
        if figure is not None:
            return figure
    if location.country_iso3:
        figure = country_yearly(location.country_iso3, year)
        if figure is not None:
            return figure
    return world_yearly()


def all_yearly_figures(where: str | GridLocation, year: int | None = None) -> list[IntensityFigure]:
    """Every embedded figure that applies to ``where`` (zone, Google region, country, world).

    For showing methodology differences side by side; figures with different ``basis`` or ``mix`` are
    not comparable without a flag.
    """
    location = locate(where)
    figures: list[IntensityFigure] = []
    if location.zone and (zone := zone_yearly(location.zone, year)) is not None:
        figures.append(zone)
    if (
        location.region is not None
        and location.region.provider == "gcp"
        and (google := google_region_yearly(location.region.region_code, year)) is not None
    ):
        figures.append(google)
    if location.country_iso3:
        if (country := country_yearly(location.country_iso3, year)) is not None:
            figures.append(country)
        owid = owid_countries().get(location.country_iso3)
        if owid is not None and location.country_iso3 in ember_countries():
            figures.append(
                IntensityFigure(
                    key=location.country_iso3,
                    level="country",
                    intensity_g_per_kwh=owid.intensity_g_per_kwh,
                    source=SOURCE_OWID,
                    year=owid.year,
                    basis="lifecycle",
                    mix="production",
                    renewable_pct=owid.renewable_pct,
                    cfe_pct=owid.low_carbon_pct,
                    name=owid.name,
                )
            )
    figures.append(world_yearly())
    return figures

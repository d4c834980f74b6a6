"""Loading the embedded reference data in ``data/`` — lazily, once, with no network.

Each loader parses one shipped file into plain typed rows and caches the result for the life of the
process (``functools.cache``); nothing is read at import time. ``data/PROVENANCE.md`` says where every
file comes from and under which licence. The public look-ups built on these rows are in
:mod:`planner.grid_carbon.reference`; this module only knows file formats.

Datasets:

* Electricity Maps yearly zone data 2021–2025 (via co2.js, ODbL): intensity (lifecycle, consumption
  based), renewable % and carbon-free %, 352 zones.
* Ember yearly country averages (via co2.js, CC BY-SA 4.0): lifecycle, production based.
* Our World in Data country energy mix (via CodeCarbon, MIT / CC BY 4.0): intensity and TWh by source,
  from which renewable and low-carbon shares are computed.
* Google Cloud region-carbon-info 2019–2024 (Apache-2.0): Google CFE and grid intensity per region.
* UNFCCC/IFI harmonised grid factors 2021 (via co2.js, CC BY-SA 4.0): ISO2↔ISO3 codes and operating
  margins.
* Carbontracker (MIT): OWID intensity keyed by ISO2 (for codes) and EEA car-km factors.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from planner.grid_carbon.records import Basis

EM_YEARS: tuple[int, ...] = (2021, 2022, 2023, 2024, 2025)
GOOGLE_YEARS: tuple[int, ...] = (2019, 2020, 2021, 2022, 2023, 2024)


class DatasetError(RuntimeError):
    """A shipped data file is missing or not in the expected shape (a packaging bug, not user error)."""


def data_dir() -> Traversable:
    """The ``data/`` folder inside this package (works from a wheel as well as a checkout)."""
    return resources.files("planner.grid_carbon").joinpath("data")


def read_data_text(*parts: str) -> str:
    """Read a shipped data file as UTF-8 text (a leading BOM is dropped)."""
    node = data_dir()
    for part in parts:
        node = node.joinpath(part)
    try:
        return node.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise DatasetError(f"embedded data file data/{'/'.join(parts)} is missing") from exc


def _json(*parts: str) -> Any:
    return json.loads(read_data_text(*parts))


def _csv_rows(*parts: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(read_data_text(*parts))))


@dataclass(frozen=True, slots=True)
class ZoneYear:
    """One Electricity Maps zone in one year."""

    zone: str
    year: int
    name: str
    country_name: str
    intensity_g_per_kwh: float
    renewable_pct: float | None
    cfe_pct: float | None


@cache
def electricity_maps_yearly() -> dict[int, dict[str, ZoneYear]]:
    """``{year: {zone: ZoneYear}}`` from ``co2js/electricity-maps/yearly_YYYY.json``."""
    years: dict[int, dict[str, ZoneYear]] = {}
    for year in EM_YEARS:
        raw = _json("co2js", "electricity-maps", f"yearly_{year}.json")
        zones: dict[str, ZoneYear] = {}
        for zone, row in raw.items():
            intensity = (row.get("carbonIntensity") or {}).get("value")
            if intensity is None:
                continue
            unit = row["carbonIntensity"].get("unit")
            if unit != "gCO2eq/kWh":
                raise DatasetError(f"EM {year} {zone}: unexpected unit {unit!r}")
            meta = row.get("zone") or {}
            zones[zone] = ZoneYear(
                zone=zone,
                year=year,
                name=str(meta.get("displayName") or meta.get("zoneName") or zone),
                country_name=str(meta.get("countryName") or meta.get("zoneName") or ""),
                intensity_g_per_kwh=float(intensity),
                renewable_pct=_pct((row.get("renewableEnergy") or {}).get("value")),
                cfe_pct=_pct((row.get("carbonFreeEnergy") or {}).get("value")),
            )
        years[year] = zones
    return years


def _pct(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class CountryYear:
    """A country (or aggregate such as ``World``) average from Ember or OWID."""

    key: str
    name: str
    year: int
    intensity_g_per_kwh: float
    renewable_pct: float | None = None
    low_carbon_pct: float | None = None


@cache
def ember_countries() -> dict[str, CountryYear]:
    """Ember yearly averages keyed by ISO3 (countries) or by name (aggregates: ``World``, ``EU``…)."""
    out: dict[str, CountryYear] = {}
    for key, row in _json("co2js", "average-intensities.json").items():
        out[key] = CountryYear(
            key=key,
            name=str(row["country_or_region"]),
            year=int(row["year"]),
            intensity_g_per_kwh=float(row["emissions_intensity_gco2_per_kwh"]),
        )
    return out


@cache
def owid_countries() -> dict[str, CountryYear]:
    """OWID country data (via CodeCarbon) keyed by ISO3, with renewable and low-carbon shares."""
    out: dict[str, CountryYear] = {}
    for key, row in _json("codecarbon", "global_energy_mix.json").items():
        total_twh = float(row.get("total_TWh") or 0.0)
        renewable = low_carbon = None
        if total_twh > 0:
            renewable = min(100.0, 100.0 * float(row.get("renewables_TWh") or 0.0) / total_twh)
            low_carbon = min(100.0, 100.0 * float(row.get("low_carbon_TWh") or 0.0) / total_twh)
        out[key] = CountryYear(
            key=key,
            name=str(row.get("country_name") or key),
            year=int(row["year"]),
            intensity_g_per_kwh=float(row["carbon_intensity"]),
            renewable_pct=renewable,
            low_carbon_pct=low_carbon,
        )
    return out


@dataclass(frozen=True, slots=True)
class CountryCode:
    """ISO 3166 codes and a display name."""

    iso2: str
    iso3: str
    name: str


@cache
def country_codes() -> dict[str, CountryCode]:
    """ISO2 → :class:`CountryCode`, merged from the UNFCCC table and Carbontracker's OWID table."""
    out: dict[str, CountryCode] = {}
    for row in _csv_rows("carbontracker", "carbon-intensities.csv"):
        iso2, iso3 = row["alpha-2"].strip(), row["Code"].strip()
        if len(iso2) == 2 and len(iso3) == 3:
            out[iso2] = CountryCode(iso2, iso3, row["Entity"].strip())
    for name, row in _json("co2js", "marginal-intensities-2021.json").items():
        iso2 = (row.get("country_code_iso_2") or "").strip()
        iso3 = (row.get("country_code_iso_3") or "").strip()
        if len(iso2) == 2 and len(iso3) == 3:
            out[iso2] = CountryCode(iso2, iso3, name)
    return out


@cache
def iso3_to_iso2() -> dict[str, str]:
    """ISO3 → ISO2."""
    return {code.iso3: code.iso2 for code in country_codes().values()}


@dataclass(frozen=True, slots=True)
class GoogleRegionYear:
    """One Google Cloud region in one year of ``region-carbon-info``."""

    region: str
    location: str
    year: int
    intensity_g_per_kwh: float | None
    google_cfe_pct: float | None
    basis: Basis


@cache
def google_regions() -> dict[int, dict[str, GoogleRegionYear]]:
    """``{year: {region: GoogleRegionYear}}``.

    The 2019 and 2020 files say "Lifecycle grid carbon intensity"; from 2021 Google reports "average
    operational gross emissions" (direct). The header decides the basis, so the two are never mixed.
    """
    years: dict[int, dict[str, GoogleRegionYear]] = {}
    for year in GOOGLE_YEARS:
        text = read_data_text("google-region-carbon", f"{year}.csv")
        reader = csv.reader(io.StringIO(text))
        header = next(reader)
        intensity_header = header[3].lower()
        if "gco2eq / kwh" not in intensity_header:
            raise DatasetError(f"Google {year}: unexpected intensity column {header[3]!r}")
        basis: Basis = "lifecycle" if intensity_header.startswith("lifecycle") else "direct"
        regions: dict[str, GoogleRegionYear] = {}
        for row in reader:
            if not row or not row[0].strip():
                continue
            region, location, cfe, intensity = (cell.strip() for cell in row[:4])
            regions[region] = GoogleRegionYear(
                region=region,
                location=location,
                year=year,
                intensity_g_per_kwh=float(intensity) if intensity else None,
                google_cfe_pct=100.0 * float(cfe) if cfe else None,
                basis=basis,
            )
        years[year] = regions
    return years


@dataclass(frozen=True, slots=True)
class CarFactor:
    """Grams of CO2e per km for an average new car (EEA), from Carbontracker's ``co2eq.csv``."""

    name: str
    g_per_km: float
    source: str


@cache
def car_factors() -> dict[str, CarFactor]:
    """``{name: CarFactor}`` — ``eu_new_car_2018`` (120.4 g/km) and ``eu_new_car_2020`` (107.5 g/km)."""
    out: dict[str, CarFactor] = {}
    for row in _csv_rows("carbontracker", "co2eq.csv"):
        if row["unit"].strip() != "km travelled by car":
            continue
        out[row["name"]] = CarFactor(row["name"], float(row["gCO2eq_per_unit"]), row["source"])
    return out


@cache
def per_source_factors_g_per_kwh() -> dict[str, float]:
    """CodeCarbon's per-fuel factors (coal 995 … wind 26 g/kWh) and ``world_average`` (475, IEA 2019)."""
    raw = _json("codecarbon", "carbon_intensity_per_source.json")
    return {key: float(value) for key, value in raw.items() if isinstance(value, int | float)}


@cache
def operating_margins_g_per_kwh() -> dict[str, float]:
    """UNFCCC/IFI 2021 operating-margin grid factors (a marginal proxy) keyed by ISO3."""
    out: dict[str, float] = {}
    for row in _json("co2js", "marginal-intensities-2021.json").values():
        iso3 = (row.get("country_code_iso_3") or "").strip()
        value = (row.get("Operating Margin Grid Emission") or "").strip()
        if len(iso3) == 3 and value:
            try:
                out[iso3] = float(value)
            except ValueError:
                continue
    return out

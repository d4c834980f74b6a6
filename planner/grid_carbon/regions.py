"""Where a computation runs: cloud regions, grid zones and countries.

Grid intensity is a property of a *grid zone* — an Electricity Maps zone such as ``DE``, ``SE-SE3`` or
``US-MIDA-PJM`` (a US balancing authority). A cloud region is a building inside one zone, so the region
catalogue maps each region to its zone and country:

* ``gcp:<region>`` — every region in Google's ``region-carbon-info`` files;
* ``aws:<region>`` and ``azure:<region>`` — the main regions, mapped by hand from the location each
  provider documents for the region (city or state). Where one city straddles two balancing areas the
  ``mapping_source`` column says "judgement call" and names the alternative.

The catalogue is our own work (``data/regions/cloud_regions.csv``). The Green Software Foundation's
region metadata was *not* copied: its data is all-rights-reserved.

:func:`locate` turns any of the accepted spellings — ``aws:eu-north-1``, an EM zone (``SE-SE3``), an ISO
alpha-2 (``SE``) or alpha-3 (``SWE``) country code — into a :class:`GridLocation`.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache

from planner.grid_carbon.datasets import country_codes, electricity_maps_yearly, iso3_to_iso2, read_data_text

PROVIDERS: tuple[str, ...] = ("gcp", "aws", "azure")

EU_MEMBERS: frozenset[str] = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    ]
)
EEA_MEMBERS: frozenset[str] = EU_MEMBERS | {"IS", "LI", "NO"}

_ZONE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class UnknownLocationError(ValueError):
    """The string names no known cloud region, zone or country, and is not a valid zone id."""


@dataclass(frozen=True, slots=True)
class CloudRegion:
    """One cloud region and the grid zone it draws power from."""

    region_id: str
    provider: str
    region_code: str
    location: str
    country_iso2: str
    zone: str
    mapping_source: str


@dataclass(frozen=True, slots=True)
class GridLocation:
    """A resolved place: the grid zone, the country, and the cloud region if one was named.

    ``zone`` may be a zone absent from the embedded data (e.g. an imported WattTime region); the
    fallback chain then goes straight to the country or world figure and says so.
    """

    query: str
    zone: str | None
    country_iso2: str | None
    country_iso3: str | None
    region: CloudRegion | None = None

    @property
    def label(self) -> str:
        """Short human label: the region id if any, else the zone, else the country."""
        if self.region is not None:
            return self.region.region_id
        return self.zone or self.country_iso3 or self.query

    @property
    def residency_groups(self) -> frozenset[str]:
        """Data-residency groups this place belongs to (see :func:`residency_groups`)."""
        return residency_groups(self.country_iso2)


def residency_groups(country_iso2: str | None) -> frozenset[str]:
    """The groups a data-residency rule can name: the ISO2 country itself, ``EU`` and ``EEA``."""
    if not country_iso2:
        return frozenset()
    groups = {country_iso2}
    if country_iso2 in EU_MEMBERS:
        groups.add("EU")
    if country_iso2 in EEA_MEMBERS:
        groups.add("EEA")
    return frozenset(groups)


@cache
def cloud_regions() -> dict[str, CloudRegion]:
    """All catalogued regions keyed by ``provider:region`` id."""
    rows = csv.DictReader(io.StringIO(read_data_text("regions", "cloud_regions.csv")))
    out: dict[str, CloudRegion] = {}
    for row in rows:
        item = CloudRegion(
            region_id=row["region_id"],
            provider=row["provider"],
            region_code=row["region_code"],
            location=row["location"],
            country_iso2=row["country_iso2"],
            zone=row["zone"],
            mapping_source=row["mapping_source"],
        )
        out[item.region_id] = item
    return out


def cloud_region(region_id: str) -> CloudRegion:
    """The catalogued region ``provider:code`` (case-insensitive), or :class:`UnknownLocationError`."""
    key = region_id.strip().lower()
    found = cloud_regions().get(key)
    if found is None:
        raise UnknownLocationError(
            f"unknown cloud region {region_id!r}; known ids look like 'aws:eu-north-1'"
        )
    return found


@cache
def _zones_by_upper() -> dict[str, str]:
    out: dict[str, str] = {}
    for zones in electricity_maps_yearly().values():
        for key in zones:
            out.setdefault(key.upper(), key)
    return out


def _known_zone(zone: str) -> str | None:
    """The EM zone spelled as in the data (zone ids are case-sensitive there, users are not)."""
    return _zones_by_upper().get(zone.upper())


def enclosing_zone(zone: str) -> str | None:
    """The zone itself if the embedded data knows it, else the nearest enclosing known zone.

    ``GB-CI-3`` (a UK Carbon Intensity region) → ``GB``; ``US-XYZ`` → ``US``; ``None`` if none is known.
    """
    parts = zone.split("-")
    while parts:
        known = _known_zone("-".join(parts))
        if known is not None:
            return known
        parts.pop()
    return None


def locate(where: str | GridLocation) -> GridLocation:
    """Resolve a region id, zone or country code into a :class:`GridLocation`.

    Order: ``provider:region`` → known EM zone (ISO2 countries are zones too) → ISO3 country →
    any other well-formed zone id (kept as given; its country is the part before the first ``-`` when
    that is an ISO2 code).
    """
    if isinstance(where, GridLocation):
        return where
    text = where.strip()
    if not text:
        raise UnknownLocationError("empty location")
    if ":" in text:
        provider = text.split(":", 1)[0].lower()
        if provider not in PROVIDERS:
            raise UnknownLocationError(f"unknown cloud provider {provider!r} in {where!r}; use {PROVIDERS}")
        region = cloud_region(text)
        return _with_country(text, region.zone, region.country_iso2, region)
    zone = _known_zone(text)
    if zone is not None:
        return _with_country(text, zone, zone.split("-", 1)[0], None)
    if len(text) == 3 and text.upper() in iso3_to_iso2():
        iso2 = iso3_to_iso2()[text.upper()]
        return GridLocation(text, iso2 if _known_zone(iso2) else None, iso2, text.upper())
    if not _ZONE_PATTERN.match(text):
        raise UnknownLocationError(f"{where!r} is not a cloud region, zone or ISO country code")
    return _with_country(text, text, text.split("-", 1)[0].upper(), None)


def _with_country(query: str, zone: str, iso2: str, region: CloudRegion | None) -> GridLocation:
    code = country_codes().get(iso2)
    if code is None:
        return GridLocation(query, zone, None, None, region)
    return GridLocation(query, zone, code.iso2, code.iso3, region)

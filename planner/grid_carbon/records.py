"""The value types every part of the carbon library speaks.

Two kinds of intensity figure exist and are kept apart on purpose:

* :class:`IntensityRecord` is one *time-stamped* observation or forecast for a grid zone, as an importer
  or a live provider produces it (an hour, a day, a month or a year of Electricity Maps, UK Carbon
  Intensity or WattTime data). These are what the Django layer stores as imported intensity rows.
* :class:`IntensityFigure` is an *embedded reference* figure shipped with the product (yearly zone,
  country, cloud-region or world averages), used when no time-stamped data covers an hour.

Vocabulary carried by both:

``basis`` — what the emission factor counts.
    ``lifecycle`` factors count everything needed to produce a kWh: building the plant, mining and
    transporting fuel, upstream methane leaks, plus combustion. Wind and nuclear get ~10–30 g/kWh.
    ``direct`` (operational) factors count only what comes out of the stack when fuel is burnt; wind,
    solar and nuclear are 0 g/kWh. Lifecycle figures are higher; never compare one with the other
    without saying so.
``signal`` — ``average`` intensity is the mean over all generation serving the load (what accounting
    uses). ``marginal`` intensity (WattTime MOER) is the emission rate of the plant that would respond to
    one more kWh — the right signal for *deciding when* to run, the wrong one for *reporting* emissions.
``granularity`` — the period one value covers: ``hour``, ``day``, ``month`` or ``year``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

Basis = Literal["lifecycle", "direct"]
Signal = Literal["average", "marginal"]
Granularity = Literal["hour", "day", "month", "year"]
Mix = Literal["consumption", "production"]
"""Consumption-based figures (Electricity Maps) follow imports into a zone; production-based ones
(Ember, OWID) only count generation inside the country."""

BASES: tuple[Basis, ...] = ("lifecycle", "direct")
GRANULARITIES: tuple[Granularity, ...] = ("hour", "day", "month", "year")


def check_intensity(value: float, *, what: str = "intensity_g_per_kwh") -> float:
    """Return ``value`` as a float if it is a finite, non-negative intensity, else raise ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, got a boolean")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"{what} must be finite, got {value!r}")
    if number < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return number


def check_pct(value: float | None, *, what: str) -> float | None:
    """Return a percentage in [0, 100] (or ``None``), else raise ``ValueError``."""
    if value is None:
        return None
    number = float(value)
    if math.isnan(number) or not 0.0 <= number <= 100.0:
        raise ValueError(f"{what} must be a percentage between 0 and 100, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class IntensityRecord:
    """One grid-intensity value for ``zone`` over the period starting at ``start_utc``.

    ``start_utc`` is the start of the period in UTC (an hour, the midnight that starts a day, the first
    day of a month or year). Sub-hourly sources (UK half-hours, WattTime 5-minute points) are averaged
    into hours by the importers, so the finest granularity here is ``hour``.
    """

    zone: str
    start_utc: datetime
    granularity: Granularity
    intensity_g_per_kwh: float
    basis: Basis
    source: str
    signal: Signal = "average"
    renewable_pct: float | None = None
    cfe_pct: float | None = None
    is_forecast: bool = False
    is_estimated: bool = False

    def __post_init__(self) -> None:
        check_intensity(self.intensity_g_per_kwh)
        check_pct(self.renewable_pct, what="renewable_pct")
        check_pct(self.cfe_pct, what="cfe_pct")
        if self.start_utc.tzinfo is None:
            raise ValueError("start_utc must be timezone-aware (UTC)")
        if self.basis not in BASES:
            raise ValueError(f"basis must be one of {BASES}, got {self.basis!r}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {self.granularity!r}")

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for storage or JSON); ``start_utc`` stays a datetime."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class IntensityFigure:
    """An embedded yearly reference figure for a zone, country, cloud region or the world.

    ``level`` says what ``key`` names: an Electricity Maps ``zone`` (``DE``, ``US-MIDA-PJM``), a
    ``country`` (ISO 3166 alpha-3), a cloud ``region`` (``gcp:europe-west1``) or the ``world``.
    ``note`` explains a year substitution (e.g. "2025 is the newest year available; asked for 2026").
    """

    key: str
    level: Literal["zone", "country", "region", "world"]
    intensity_g_per_kwh: float
    source: str
    year: int
    basis: Basis
    mix: Mix | None = None
    renewable_pct: float | None = None
    cfe_pct: float | None = None
    name: str = ""
    note: str = ""
    granularity: Granularity = "year"

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for storage or JSON)."""
        return asdict(self)

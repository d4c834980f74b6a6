"""Emissions of a run: Σ over UTC hours of GPU energy × PUE × grid intensity.

For every UTC hour ``h`` in which the run used energy::

    facility_energy_kwh[h] = energy_j[h] × PUE / 3 600 000
    emissions_g[h]         = facility_energy_kwh[h] × intensity_g_per_kwh(zone, h)

* ``energy_j`` is the IT energy measured at the GPUs (counter differences) in that hour.
* **PUE** (power usage effectiveness = facility energy ÷ IT energy) adds cooling, power conversion and
  lighting; 1.0 means "IT only". Data-centre averages are around 1.5 (Uptime Institute 2023: 1.58);
  hyperscalers report ~1.1.
* The intensity comes from :class:`IntensityResolver` — hourly data where present, else yearly
  figures — and every hour records which step answered and why.

This is the **location-based** Scope 2 figure. If contractual instruments are given, the
**market-based** figure is computed alongside (:mod:`market`); neither is ever reduced by offsets
(:mod:`offsets` is a separate ledger).

Multi-node runs: call once per node (each node has its own zone and PUE) and add the totals; every
node's per-hour records stay with their own provenance.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from planner.grid_carbon.hours import require_utc_hour
from planner.grid_carbon.market import MarketBasedResult, MarketInstruments, market_based
from planner.grid_carbon.records import Basis
from planner.grid_carbon.regions import GridLocation, locate
from planner.grid_carbon.resolve import FallbackStep, IntensityResolver
from planner.units import J_PER_KWH


@dataclass(frozen=True, slots=True)
class HourEmissions:
    """One UTC hour of a run: energy, the intensity used, emissions, and the intensity's provenance."""

    hour_utc: datetime
    energy_j: float
    pue: float
    facility_energy_kwh: float
    intensity_g_per_kwh: float
    emissions_g: float
    source: str
    basis: Basis
    year: int
    step: FallbackStep
    reason: str

    @property
    def fallback(self) -> bool:
        """True when the hour did not use the zone's own hourly value."""
        return self.step != "hourly"


@dataclass(frozen=True, slots=True)
class EmissionsReport:
    """Per-hour records and totals for one run on one site (location-based, and market-based if asked)."""

    where: str
    zone: str | None
    pue: float
    hours: tuple[HourEmissions, ...]
    energy_j: float
    facility_energy_kwh: float
    location_emissions_g: float
    market: MarketBasedResult | None = None

    @property
    def market_emissions_g(self) -> float | None:
        """Market-based emissions in grams, or ``None`` when no instruments were given."""
        return None if self.market is None else self.market.emissions_g

    @property
    def bases(self) -> frozenset[Basis]:
        """The factor bases used across hours; more than one means the total mixes methods."""
        return frozenset(hour.basis for hour in self.hours)

    @property
    def mixed_basis(self) -> bool:
        """True when lifecycle and direct figures were summed (show a warning)."""
        return len(self.bases) > 1

    @property
    def fallback_hours(self) -> int:
        """How many hours used something other than the zone's hourly value."""
        return sum(1 for hour in self.hours if hour.fallback)

    @property
    def steps(self) -> dict[FallbackStep, int]:
        """Hours per fallback step, e.g. ``{"hourly": 20, "zone_yearly": 4}``."""
        return dict(Counter(hour.step for hour in self.hours))

    @property
    def mean_intensity_g_per_kwh(self) -> float:
        """Energy-weighted mean intensity (0 for a run with no energy)."""
        if self.facility_energy_kwh <= 0:
            return 0.0
        return self.location_emissions_g / self.facility_energy_kwh


def check_pue(pue: float) -> float:
    """A PUE is finite and at least 1.0 (a facility cannot use less energy than its IT load)."""
    value = float(pue)
    if math.isnan(value) or math.isinf(value) or value < 1.0:
        raise ValueError(f"PUE must be a finite number ≥ 1.0, got {pue!r}")
    return value


def compute_emissions(
    energy_j_by_hour: Mapping[datetime, float],
    *,
    where: str | GridLocation,
    pue: float = 1.0,
    resolver: IntensityResolver | None = None,
    instruments: MarketInstruments | None = None,
) -> EmissionsReport:
    """Emissions for ``{hour_utc: energy_j}`` measured at a site in ``where`` with the given PUE.

    ``where`` is a cloud region id, zone or country code. Without a ``resolver`` only embedded yearly
    data is used. With ``instruments`` the market-based result is attached (``report.market``).
    Raises ``ValueError`` for a non-UTC-hour key, a negative or non-finite energy, or a PUE below 1.
    """
    location = locate(where)
    factor = check_pue(pue)
    resolver = resolver or IntensityResolver()
    hours: list[HourEmissions] = []
    for raw_hour, energy_j in sorted(energy_j_by_hour.items(), key=lambda item: item[0]):
        hour = require_utc_hour(raw_hour)
        energy = float(energy_j)
        if math.isnan(energy) or math.isinf(energy) or energy < 0:
            raise ValueError(f"energy_j for {hour.isoformat()} must be finite and ≥ 0, got {energy_j!r}")
        resolved = resolver.resolve(location, hour)
        facility_kwh = energy * factor / J_PER_KWH
        hours.append(
            HourEmissions(
                hour_utc=hour,
                energy_j=energy,
                pue=factor,
                facility_energy_kwh=facility_kwh,
                intensity_g_per_kwh=resolved.intensity_g_per_kwh,
                emissions_g=facility_kwh * resolved.intensity_g_per_kwh,
                source=resolved.source,
                basis=resolved.basis,
                year=resolved.year,
                step=resolved.step,
                reason=resolved.reason,
            )
        )
    market = market_based(hours, instruments, location) if instruments is not None else None
    return EmissionsReport(
        where=location.label,
        zone=location.zone,
        pue=factor,
        hours=tuple(hours),
        energy_j=sum(h.energy_j for h in hours),
        facility_energy_kwh=sum(h.facility_energy_kwh for h in hours),
        location_emissions_g=sum(h.emissions_g for h in hours),
        market=market,
    )

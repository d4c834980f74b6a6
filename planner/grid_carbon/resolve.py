"""Grid intensity for a place and a UTC hour, with the fallback chain and its reasons.

Emissions accounting needs one intensity per hour of a run. The best figure is the zone's own value
for that hour; when it is missing the resolver steps down, and every answer says which step it came
from and why::

    1. hourly      imported or live data for the zone and hour (coarser imported rows — a day or a
                   month from an Electricity Maps CSV — count as step "imported_period")
    2. zone_yearly Electricity Maps yearly figure for the zone, or for the nearest enclosing zone
                   (``GB-CI-13`` → ``GB``); same year, else the nearest year available
    3. country_yearly  Ember (else OWID) yearly figure for the zone's country
    4. world       Ember world average

Marginal signals (WattTime ``co2_moer``) are refused for accounting unless asked for: the marginal
rate answers "what would one more kWh emit now", not "what did this kWh emit on average".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from planner.grid_carbon.hourly import HourlyLookup, HourlyMiss, as_hourly_lookup
from planner.grid_carbon.hours import format_hour, require_utc_hour
from planner.grid_carbon.providers.base import IntensityProvider
from planner.grid_carbon.providers.lookup import ProviderHourlyLookup
from planner.grid_carbon.records import Basis, Granularity, IntensityFigure, IntensityRecord, Signal
from planner.grid_carbon.reference import (
    country_yearly,
    short_source,
    world_yearly,
    zone_yearly,
)
from planner.grid_carbon.regions import GridLocation, enclosing_zone, locate

FallbackStep = Literal["hourly", "imported_period", "zone_yearly", "country_yearly", "world"]

HourlyInput = (
    HourlyLookup | IntensityProvider | Iterable[IntensityRecord] | Mapping[datetime, IntensityRecord]
)


@dataclass(frozen=True, slots=True)
class ResolvedIntensity:
    """The intensity used for one place and hour, with where it came from."""

    hour_utc: datetime
    where: str
    zone: str | None
    intensity_g_per_kwh: float
    source: str
    basis: Basis
    year: int
    granularity: Granularity
    step: FallbackStep
    reason: str
    signal: Signal = "average"
    is_forecast: bool = False
    is_estimated: bool = False
    renewable_pct: float | None = None
    cfe_pct: float | None = None

    @property
    def fallback(self) -> bool:
        """True when the value is not the zone's own value for this hour."""
        return self.step != "hourly"


class IntensityResolver:
    """Resolve ``(where, hour)`` to a :class:`ResolvedIntensity` through the fallback chain.

    ``hourly`` is the caller's time-stamped data: a :class:`HourlyLookup`, a live
    :class:`IntensityProvider`, a list of :class:`IntensityRecord` or ``{hour: record}``. Without it the
    chain starts at the zone's yearly figure.
    """

    def __init__(self, hourly: HourlyInput | None = None, *, allow_marginal: bool = False) -> None:
        if isinstance(hourly, IntensityProvider):
            self._hourly: HourlyLookup | None = ProviderHourlyLookup(hourly)
        else:
            self._hourly = as_hourly_lookup(hourly)
        self.allow_marginal = allow_marginal

    def resolve(self, where: str | GridLocation, hour_utc: datetime) -> ResolvedIntensity:
        """The intensity for ``where`` (region id, zone or country) in the UTC hour ``hour_utc``."""
        hour = require_utc_hour(hour_utc)
        location = locate(where)
        zone = location.zone
        reasons: list[str] = []

        if self._hourly is None:
            reasons.append(f"no hourly data supplied for {format_hour(hour)}")
        elif zone is None:
            reasons.append(f"{location.query!r} has no grid zone for hourly data")
        else:
            answer = self._hourly.lookup(zone, hour)
            if isinstance(answer, HourlyMiss):
                reasons.append(answer.reason)
            elif answer.signal == "marginal" and not self.allow_marginal:
                reasons.append(
                    f"hourly value for {zone} at {format_hour(hour)} is a marginal signal ({answer.source}); "
                    "marginal rates guide when to run but are not used to report emissions"
                )
            else:
                return self._from_record(location, hour, answer)

        if zone is not None:
            known = enclosing_zone(zone)
            figure = zone_yearly(known, hour.year) if known is not None else None
            if figure is not None:
                if known != zone:
                    reasons.append(f"no Electricity Maps yearly figure for zone {zone}; {known} encloses it")
                return self._from_figure(location, hour, figure, "zone_yearly", reasons)
            reasons.append(f"no Electricity Maps yearly figure for zone {zone}")
        if location.country_iso3 is not None:
            figure = country_yearly(location.country_iso3, hour.year)
            if figure is not None:
                return self._from_figure(location, hour, figure, "country_yearly", reasons)
            reasons.append(f"no yearly figure for country {location.country_iso3}")
        else:
            reasons.append(f"no country known for {location.query!r}")
        return self._from_figure(location, hour, world_yearly(), "world", reasons)

    def _from_record(
        self, location: GridLocation, hour: datetime, record: IntensityRecord
    ) -> ResolvedIntensity:
        kind = "forecast" if record.is_forecast else "estimated" if record.is_estimated else "value"
        if record.granularity == "hour":
            step: FallbackStep = "hourly"
            reason = f"hourly {kind} for {record.zone} at {format_hour(hour)} from {record.source}"
        else:
            step = "imported_period"
            reason = (
                f"no hourly data for {record.zone} at {format_hour(hour)}; used the {record.granularity} "
                f"{kind} starting {record.start_utc:%Y-%m-%d} from {record.source}"
            )
        return ResolvedIntensity(
            hour_utc=hour,
            where=location.label,
            zone=location.zone,
            intensity_g_per_kwh=record.intensity_g_per_kwh,
            source=record.source,
            basis=record.basis,
            year=record.start_utc.year,
            granularity=record.granularity,
            step=step,
            reason=reason,
            signal=record.signal,
            is_forecast=record.is_forecast,
            is_estimated=record.is_estimated,
            renewable_pct=record.renewable_pct,
            cfe_pct=record.cfe_pct,
        )

    def _from_figure(
        self,
        location: GridLocation,
        hour: datetime,
        figure: IntensityFigure,
        step: FallbackStep,
        reasons: list[str],
    ) -> ResolvedIntensity:
        short = short_source(figure.source)
        what = "world average" if step == "world" else f"yearly for {figure.key}"
        used = f"used {short} {figure.year} {what}"
        if figure.note:
            used += f" ({figure.note})"
        return ResolvedIntensity(
            hour_utc=hour,
            where=location.label,
            zone=location.zone,
            intensity_g_per_kwh=figure.intensity_g_per_kwh,
            source=figure.source,
            basis=figure.basis,
            year=figure.year,
            granularity="year",
            step=step,
            reason="; ".join([*reasons, used]),
            renewable_pct=figure.renewable_pct,
            cfe_pct=figure.cfe_pct,
        )

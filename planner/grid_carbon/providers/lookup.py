"""Serving live provider data to the fallback chain.

:class:`ProviderHourlyLookup` turns a provider into a :class:`HourlyLookup`: past hours are looked up in
the provider's history, future hours in its forecast, each fetched once per zone and kept. A provider
failure never propagates — it becomes an :class:`HourlyMiss` whose reason names the failure
("live Electricity Maps unavailable: GET /v3/carbon-intensity/history timed out after 5 s"), and the
resolver moves on to the yearly figures.
"""

from __future__ import annotations

from datetime import datetime

from planner.grid_carbon.hourly import HourlyMiss, HourlyTable
from planner.grid_carbon.hours import floor_to_hour, format_hour, require_utc_hour
from planner.grid_carbon.providers.base import Clock, IntensityProvider, ProviderError, utc_now
from planner.grid_carbon.records import IntensityRecord


class ProviderHourlyLookup:
    """A :class:`HourlyLookup` backed by a live provider, with per-zone caching of each fetch."""

    def __init__(
        self, provider: IntensityProvider, *, clock: Clock = utc_now, forecast_hours: int = 24
    ) -> None:
        self.provider = provider
        self._clock = clock
        self.forecast_hours = forecast_hours
        self._cache: dict[tuple[str, str], HourlyTable | str] = {}

    def lookup(self, zone: str, hour_utc: datetime) -> IntensityRecord | HourlyMiss:
        """The provider's value for ``zone`` in ``hour_utc``, or a miss saying why not."""
        hour = require_utc_hour(hour_utc)
        if not self.provider.enabled:
            return HourlyMiss(f"live {self.provider.name} not configured")
        kind = "forecast" if hour > floor_to_hour(self._clock()) else "history"
        table = self._fetch(zone, kind)
        if isinstance(table, str):
            return HourlyMiss(f"live {self.provider.name} unavailable: {table}")
        found = table.lookup(zone, hour)
        if isinstance(found, HourlyMiss):
            return HourlyMiss(f"no live {self.provider.name} {kind} value for {zone} at {format_hour(hour)}")
        return found

    def _fetch(self, zone: str, kind: str) -> HourlyTable | str:
        key = (zone, kind)
        if key not in self._cache:
            try:
                if kind == "forecast":
                    records = self.provider.forecast(zone, self.forecast_hours)
                else:
                    records = self.provider.history(zone)
                self._cache[key] = HourlyTable(records, name=f"live {self.provider.name}")
            except ProviderError as exc:
                self._cache[key] = exc.message
        return self._cache[key]

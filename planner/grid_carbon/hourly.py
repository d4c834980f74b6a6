"""Time-stamped intensity data the caller supplies: the first step of the fallback chain.

The resolver asks one question of hourly data: "what was the intensity of zone Z in UTC hour H?". Any
object with a ``lookup(zone, hour_utc)`` method answering an :class:`IntensityRecord` or an
:class:`HourlyMiss` (which says *why* there is no answer) can serve — imported rows from the
database, a live provider (:class:`planner.grid_carbon.providers.ProviderHourlyLookup`), or the
:class:`HourlyTable` defined here, built from importer output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from planner.grid_carbon.hours import format_hour, require_utc_hour
from planner.grid_carbon.records import Basis, Granularity, IntensityRecord


@dataclass(frozen=True, slots=True)
class HourlyMiss:
    """No hourly value; ``reason`` is shown to users ("no hourly data for DE at 2026-05-01T03:00Z")."""

    reason: str


@runtime_checkable
class HourlyLookup(Protocol):
    """Anything that can answer "intensity of ``zone`` in ``hour_utc``"."""

    def lookup(self, zone: str, hour_utc: datetime) -> IntensityRecord | HourlyMiss:
        """Return the record covering the hour, or a miss with its reason."""
        ...


def period_start(hour_utc: datetime, granularity: Granularity) -> datetime:
    """Start of the ``granularity`` period (UTC) containing ``hour_utc``."""
    if granularity == "hour":
        return hour_utc
    if granularity == "day":
        return hour_utc.replace(hour=0)
    if granularity == "month":
        return hour_utc.replace(day=1, hour=0)
    return hour_utc.replace(month=1, day=1, hour=0)


def _preference(record: IntensityRecord) -> tuple[int, int]:
    # Average beats marginal (accounting needs averages); measured beats forecast.
    return (record.signal == "average", not record.is_forecast)


class HourlyTable:
    """An in-memory :class:`HourlyLookup` over importer or provider records.

    Records of any granularity may be mixed; a lookup returns the finest record whose period contains
    the hour (hour, then day, month, year). When two records share zone, period and granularity, an
    average beats a marginal one and a measured one beats a forecast; otherwise the later one wins
    (pass newer imports last).
    """

    def __init__(self, records: Iterable[IntensityRecord], *, name: str = "imported data") -> None:
        self.name = name
        self._index: dict[tuple[str, Granularity, datetime], IntensityRecord] = {}
        for record in records:
            key = (record.zone, record.granularity, record.start_utc)
            current = self._index.get(key)
            if current is None or _preference(record) >= _preference(current):
                self._index[key] = record

    @classmethod
    def from_mapping(
        cls,
        zone: str,
        values: Mapping[datetime, float],
        *,
        basis: Basis,
        source: str,
        is_forecast: bool = False,
    ) -> HourlyTable:
        """Build a table for one zone from ``{hour_utc: intensity_g_per_kwh}``."""
        records = [
            IntensityRecord(
                zone=zone,
                start_utc=require_utc_hour(hour),
                granularity="hour",
                intensity_g_per_kwh=value,
                basis=basis,
                source=source,
                is_forecast=is_forecast,
            )
            for hour, value in values.items()
        ]
        return cls(records, name=source)

    def __len__(self) -> int:
        return len(self._index)

    def records(self) -> list[IntensityRecord]:
        """All kept records, sorted by zone and time."""
        return sorted(self._index.values(), key=lambda r: (r.zone, r.start_utc, r.granularity))

    def lookup(self, zone: str, hour_utc: datetime) -> IntensityRecord | HourlyMiss:
        """The finest record covering ``hour_utc`` for ``zone``, or a miss naming the hour."""
        hour = require_utc_hour(hour_utc)
        for granularity in ("hour", "day", "month", "year"):
            found = self._index.get((zone, granularity, period_start(hour, granularity)))
            if found is not None:
                return found
        return HourlyMiss(f"no hourly data for {zone} at {format_hour(hour)} in {self.name}")


def as_hourly_lookup(
    hourly: HourlyLookup | Iterable[IntensityRecord] | Mapping[datetime, IntensityRecord] | None,
) -> HourlyLookup | None:
    """Accept a lookup object, a list of records or a ``{hour: record}`` mapping; ``None`` stays ``None``."""
    if hourly is None:
        return None
    if isinstance(hourly, HourlyLookup):
        return hourly
    if isinstance(hourly, Mapping):
        return HourlyTable(hourly.values())
    return HourlyTable(hourly)

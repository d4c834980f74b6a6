"""UK Carbon Intensity API client (api.carbonintensity.org.uk; no key, CC BY 4.0).

Zones: ``GB`` is the national series (with measured ``actual`` values); ``GB-CI-<regionid>`` are the
API's regions (forecast-only). Paths used::

    national  /intensity · /intensity/{from}/{to} · /intensity/{from}/fw24h|fw48h
    regional  /regional/regionid/{id} · /regional/intensity/{from}/{to}/regionid/{id}
              /regional/intensity/{from}/fw24h|fw48h/regionid/{id}

Values are direct (operational) intensities; see :mod:`planner.grid_carbon.importers.uk_carbon_intensity`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from planner.grid_carbon.importers.errors import CarbonImportError
from planner.grid_carbon.importers.uk_carbon_intensity import (
    NATIONAL_ZONE,
    REGION_ZONE_PREFIX,
    parse_uk_carbon_intensity_json,
)
from planner.grid_carbon.providers.base import (
    Clock,
    IntensityProvider,
    ProviderDisabled,
    ProviderResponseError,
    ProviderUnsupportedZone,
    utc_now,
)
from planner.grid_carbon.providers.http import build_url, get_json
from planner.grid_carbon.records import IntensityRecord

DEFAULT_BASE_URL = "https://api.carbonintensity.org.uk"


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%MZ")


class UKCarbonIntensityProvider(IntensityProvider):
    """Live GB national and regional intensity (half-hours averaged into hours)."""

    name = "UK Carbon Intensity"
    update_period_s = 1800

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 10.0,
        enabled: bool = True,
        clock: Clock = utc_now,
    ) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s
        self._enabled = enabled
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self._enabled

    def latest(self, zone: str) -> IntensityRecord:
        region = self._region(zone)
        path = "intensity" if region is None else f"regional/regionid/{region}"
        return self._records(path, zone)[-1]

    def history(self, zone: str) -> list[IntensityRecord]:
        region = self._region(zone)
        end = self._half_hour()
        start = end - timedelta(hours=24)
        window = f"{_stamp(start)}/{_stamp(end)}"
        path = f"intensity/{window}" if region is None else f"regional/intensity/{window}/regionid/{region}"
        return self._records(path, zone)

    def forecast(self, zone: str, horizon_hours: int = 24) -> list[IntensityRecord]:
        region = self._region(zone)
        span = "fw24h" if horizon_hours <= 24 else "fw48h"
        start = _stamp(self._half_hour())
        path = (
            f"intensity/{start}/{span}"
            if region is None
            else f"regional/intensity/{start}/{span}/regionid/{region}"
        )
        return self._records(path, zone)

    def _half_hour(self) -> datetime:
        now = self._clock()
        return now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0)

    def _region(self, zone: str) -> int | None:
        if zone == NATIONAL_ZONE:
            return None
        if zone.startswith(REGION_ZONE_PREFIX) and zone[len(REGION_ZONE_PREFIX) :].isdigit():
            return int(zone[len(REGION_ZONE_PREFIX) :])
        raise ProviderUnsupportedZone(self.name, f"zone {zone!r} is not GB or GB-CI-<regionid>")

    def _records(self, path: str, zone: str) -> list[IntensityRecord]:
        if not self._enabled:
            raise ProviderDisabled(self.name, "switched off")
        payload = get_json(build_url(self.base_url, path), provider=self.name, timeout_s=self.timeout_s)
        try:
            records = parse_uk_carbon_intensity_json(payload, zone=zone)
        except CarbonImportError as exc:
            raise ProviderResponseError(self.name, f"malformed body: {exc.problem}") from None
        return records

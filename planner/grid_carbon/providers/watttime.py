"""WattTime API v3 client: log in for a token, then read forecasts and history.

Flow: ``GET {base}/login`` with HTTP Basic credentials → ``{"token": …}`` (valid 30 minutes; cached
here for 25), then ``Authorization: Bearer <token>`` on ``/v3/forecast``, ``/v3/historical`` and
``/v3/signal-index``. A 401 on a data call triggers one fresh login and one retry.

WattTime's default signal ``co2_moer`` is a **marginal** rate (records carry ``signal="marginal"``):
use it to pick *when* to run, not to report emissions. ``co2_aoer`` (average) is historical only.
WattTime regions (``CAISO_NORTH``…) are not Electricity Maps zones: ``region_for_zone`` maps the zones
the caller asks about to WattTime regions, and results are filed under the caller's zone.
The free plan serves full data only for ``CAISO_NORTH``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from planner.grid_carbon.importers.errors import CarbonImportError
from planner.grid_carbon.importers.watttime import parse_watttime_json
from planner.grid_carbon.providers.base import (
    Clock,
    IntensityProvider,
    ProviderAuthError,
    ProviderDisabled,
    ProviderResponseError,
    utc_now,
)
from planner.grid_carbon.providers.http import build_url, get_json
from planner.grid_carbon.records import IntensityRecord

DEFAULT_BASE_URL = "https://api.watttime.org"
TOKEN_TTL = timedelta(minutes=25)


class WattTimeProvider(IntensityProvider):
    """Live WattTime data (marginal ``co2_moer`` by default), converted to g/kWh."""

    name = "WattTime"
    update_period_s = 300

    def __init__(
        self,
        username: str | None,
        password: str | None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 10.0,
        signal_type: str = "co2_moer",
        region_for_zone: Mapping[str, str] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._username = username or None
        self._password = password or None
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.signal_type = signal_type
        self.region_for_zone = dict(region_for_zone or {})
        self._clock = clock
        self._token: str | None = None
        self._token_expires: datetime | None = None

    def __repr__(self) -> str:  # never show credentials
        return f"WattTimeProvider(base_url={self.base_url!r}, enabled={self.enabled})"

    @property
    def enabled(self) -> bool:
        return self._username is not None and self._password is not None

    def latest(self, zone: str) -> IntensityRecord:
        return self.forecast(zone, horizon_hours=0)[0]

    def history(self, zone: str) -> list[IntensityRecord]:
        end = self._clock().replace(second=0, microsecond=0)
        end -= timedelta(minutes=end.minute % 5)
        start = end - timedelta(hours=24)
        return self._records(
            "v3/historical",
            zone,
            {"start": start.isoformat(), "end": end.isoformat()},
        )

    def forecast(self, zone: str, horizon_hours: int = 24) -> list[IntensityRecord]:
        return self._records("v3/forecast", zone, {"horizon_hours": horizon_hours})

    def signal_index(self, zone: str) -> float:
        """The current MOER as a 0–100 percentile of the coming day (an index, not g/kWh)."""
        payload = self._get(
            "v3/signal-index", {"region": self._region(zone), "signal_type": self.signal_type}
        )
        try:
            value = payload["data"][0]["value"]
        except (KeyError, IndexError, TypeError):
            raise ProviderResponseError(self.name, "malformed signal-index body") from None
        if not isinstance(value, int | float) or not 0 <= value <= 100:
            raise ProviderResponseError(self.name, f"signal-index value {value!r} is not a percentile")
        return float(value)

    def _region(self, zone: str) -> str:
        return self.region_for_zone.get(zone, zone)

    def _records(self, path: str, zone: str, params: dict[str, Any]) -> list[IntensityRecord]:
        payload = self._get(path, {"region": self._region(zone), "signal_type": self.signal_type, **params})
        try:
            return parse_watttime_json(payload, zone=zone)
        except CarbonImportError as exc:
            raise ProviderResponseError(self.name, f"malformed {path} body: {exc.problem}") from None

    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        url = build_url(self.base_url, path, params)
        reused = not self._token_stale()
        headers = self._auth()
        try:
            return get_json(url, provider=self.name, timeout_s=self.timeout_s, headers=headers)
        except ProviderAuthError:
            if not reused:
                raise
            self._token = None  # a cached token expired early or was revoked: log in once more
            return get_json(url, provider=self.name, timeout_s=self.timeout_s, headers=self._auth())

    def _token_stale(self) -> bool:
        return self._token is None or self._token_expires is None or self._clock() >= self._token_expires

    def _auth(self) -> dict[str, str]:
        if self._token_stale():
            self._token = self._login()
            self._token_expires = self._clock() + TOKEN_TTL
        return {"Authorization": f"Bearer {self._token}"}

    def _login(self) -> str:
        if self._username is None or self._password is None:
            raise ProviderDisabled(self.name, "no username/password configured")
        basic = base64.b64encode(f"{self._username}:{self._password}".encode()).decode("ascii")
        payload = get_json(
            build_url(self.base_url, "login"),
            provider=self.name,
            timeout_s=self.timeout_s,
            headers={"Authorization": f"Basic {basic}"},
        )
        token = payload.get("token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderResponseError(self.name, "login response has no token")
        return token

"""Electricity Maps API v3 client (``auth-token`` header).

Endpoints: ``GET {base}/carbon-intensity/latest|history|forecast?zone=…``. The base URL is
configurable because Electricity Maps has several hosts (``api.electricitymaps.com/v3``, the legacy
``api.electricitymap.org/v3``, the free tier ``api-access.electricitymaps.com/free-tier``) and a v4
API; tests point it at a local fake server. Without a token the client is disabled. Forecasts need a
paid plan; a 401/403 there raises :class:`ProviderAuthError` like any refused call.
"""

from __future__ import annotations

from typing import Any

from planner.grid_carbon.importers.electricitymaps_json import parse_electricitymaps_json
from planner.grid_carbon.importers.errors import CarbonImportError
from planner.grid_carbon.providers.base import IntensityProvider, ProviderDisabled, ProviderResponseError
from planner.grid_carbon.providers.http import build_url, get_json
from planner.grid_carbon.records import Basis, IntensityRecord

DEFAULT_BASE_URL = "https://api.electricitymaps.com/v3"


class ElectricityMapsProvider(IntensityProvider):
    """Live Electricity Maps data for a zone (``DE``, ``SE-SE3``, ``US-MIDA-PJM``…)."""

    name = "Electricity Maps"
    update_period_s = 3600

    def __init__(
        self,
        api_token: str | None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 10.0,
        emission_factor_type: Basis = "lifecycle",
        disable_estimations: bool = False,
    ) -> None:
        self._api_token = api_token or None
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.emission_factor_type: Basis = emission_factor_type
        self.disable_estimations = disable_estimations

    def __repr__(self) -> str:  # never show the token
        return f"ElectricityMapsProvider(base_url={self.base_url!r}, enabled={self.enabled})"

    @property
    def enabled(self) -> bool:
        return self._api_token is not None

    def latest(self, zone: str) -> IntensityRecord:
        records = self._records("carbon-intensity/latest", {"zone": zone})
        return records[-1]

    def history(self, zone: str) -> list[IntensityRecord]:
        return self._records("carbon-intensity/history", {"zone": zone})

    def forecast(self, zone: str, horizon_hours: int = 24) -> list[IntensityRecord]:
        return self._records("carbon-intensity/forecast", {"zone": zone, "horizonHours": horizon_hours})

    def _records(self, path: str, params: dict[str, Any]) -> list[IntensityRecord]:
        if self._api_token is None:
            raise ProviderDisabled(self.name, "no API token configured")
        query = {
            **params,
            "emissionFactorType": self.emission_factor_type,
            "disableEstimations": "true" if self.disable_estimations else "false",
        }
        payload = get_json(
            build_url(self.base_url, path, query),
            provider=self.name,
            timeout_s=self.timeout_s,
            headers={"auth-token": self._api_token},
        )
        try:
            return parse_electricitymaps_json(payload, default_basis=self.emission_factor_type)
        except CarbonImportError as exc:
            raise ProviderResponseError(self.name, f"malformed {path} body: {exc.problem}") from None

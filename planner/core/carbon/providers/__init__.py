"""Live grid-intensity providers behind one interface, all optional and failure-safe."""

from planner.core.carbon.providers.base import (
    IntensityProvider,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderDisabled,
    ProviderError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnsupportedZone,
)
from planner.core.carbon.providers.electricitymaps import ElectricityMapsProvider
from planner.core.carbon.providers.lookup import ProviderHourlyLookup
from planner.core.carbon.providers.uk import UKCarbonIntensityProvider
from planner.core.carbon.providers.watttime import WattTimeProvider

__all__ = [
    "ElectricityMapsProvider",
    "IntensityProvider",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderDisabled",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderHourlyLookup",
    "ProviderResponseError",
    "ProviderTimeout",
    "ProviderUnsupportedZone",
    "UKCarbonIntensityProvider",
    "WattTimeProvider",
]

"""Live grid-intensity providers behind one interface, all optional and failure-safe."""

from planner.grid_carbon.providers.base import (
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
from planner.grid_carbon.providers.electricitymaps import ElectricityMapsProvider
from planner.grid_carbon.providers.lookup import ProviderHourlyLookup
from planner.grid_carbon.providers.uk import UKCarbonIntensityProvider
from planner.grid_carbon.providers.watttime import WattTimeProvider

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

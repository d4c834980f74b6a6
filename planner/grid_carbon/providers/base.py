"""The live-provider interface and its typed errors.

A provider answers three questions about a zone — the ``latest`` value, recent ``history`` and a
``forecast`` — as :class:`IntensityRecord` lists, the same shape the importers produce (the template is
Zeus' ``CarbonIntensityProvider``). Providers are *optional*: without credentials a provider is
disabled, and every failure (timeout, refused credentials, server error, malformed body) raises a
subclass of :class:`ProviderError`, which callers catch to fall back on embedded data. Nothing in a
provider ever raises anything else for a network or data problem.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime

from planner.grid_carbon.records import IntensityRecord

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, aware, in UTC (injectable in providers for tests)."""
    return datetime.now(UTC)


class ProviderError(Exception):
    """A live provider could not answer. ``str(error)`` is safe to show: it never contains secrets."""

    def __init__(self, provider: str, message: str) -> None:
        self.provider = provider
        self.message = message
        super().__init__(f"{provider}: {message}")


class ProviderDisabled(ProviderError):
    """The provider has no credentials configured (or was switched off)."""


class ProviderUnsupportedZone(ProviderError):
    """The provider does not cover the zone asked for."""


class ProviderTimeout(ProviderError):
    """No complete answer within the timeout."""


class ProviderConnectionError(ProviderError):
    """The server could not be reached or dropped the connection."""


class ProviderAuthError(ProviderError):
    """HTTP 401/403: the credentials were refused."""


class ProviderHTTPError(ProviderError):
    """Any other non-2xx status (``status`` holds it); 5xx means try again later."""

    def __init__(self, provider: str, message: str, status: int) -> None:
        self.status = status
        super().__init__(provider, message)


class ProviderResponseError(ProviderError):
    """The body was not the JSON the provider documents (or failed the importer's checks)."""


class IntensityProvider(ABC):
    """A live source of grid intensity for zones."""

    name: str = "provider"
    update_period_s: int = 3600

    @property
    @abstractmethod
    def enabled(self) -> bool:
        """False when the provider has no credentials; calls then raise :class:`ProviderDisabled`."""

    @abstractmethod
    def latest(self, zone: str) -> IntensityRecord:
        """The most recent value for ``zone``."""

    @abstractmethod
    def history(self, zone: str) -> list[IntensityRecord]:
        """Recent hourly values for ``zone`` (typically the last 24 hours)."""

    @abstractmethod
    def forecast(self, zone: str, horizon_hours: int = 24) -> list[IntensityRecord]:
        """Hourly forecast for ``zone`` over the next ``horizon_hours``."""

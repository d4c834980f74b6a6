"""The fallback chain: hourly → imported period → zone yearly → country yearly → world, with reasons."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from planner.grid_carbon import HourlyMiss, HourlyTable, IntensityRecord, IntensityResolver
from planner.grid_carbon.providers import IntensityProvider, ProviderTimeout

HOUR = datetime(2024, 6, 1, 3, tzinfo=UTC)


def record(
    zone: str, start: datetime, value: float, granularity: str = "hour", **extra: object
) -> IntensityRecord:
    return IntensityRecord(zone, start, granularity, value, "lifecycle", "test data", **extra)  # type: ignore[arg-type]


def test_hourly_value_is_used_when_present() -> None:
    resolved = IntensityResolver([record("DE", HOUR, 123.0)]).resolve("DE", HOUR)
    assert resolved.step == "hourly"
    assert resolved.fallback is False
    assert resolved.intensity_g_per_kwh == 123.0
    assert resolved.reason == "hourly value for DE at 2024-06-01T03:00Z from test data"


def test_imported_daily_value_covers_its_hours_before_yearly_figures() -> None:
    day = record("FR", datetime(2024, 6, 1, tzinfo=UTC), 38.0, granularity="day")
    resolved = IntensityResolver([day]).resolve("FR", HOUR)
    assert resolved.step == "imported_period"
    assert resolved.granularity == "day"
    assert resolved.intensity_g_per_kwh == 38.0
    assert "used the day value starting 2024-06-01" in resolved.reason


def test_no_hourly_data_falls_back_to_zone_yearly_of_the_same_year() -> None:
    resolved = IntensityResolver([record("DE", datetime(2024, 6, 1, 4, tzinfo=UTC), 1.0)]).resolve("DE", HOUR)
    assert resolved.step == "zone_yearly"
    assert resolved.year == 2024
    assert resolved.intensity_g_per_kwh == 341.0  # EM yearly_2024.json, DE
    assert resolved.reason == (
        "no hourly data for DE at 2024-06-01T03:00Z in imported data; used Electricity Maps 2024 yearly for DE"
    )


def test_an_hour_after_the_newest_yearly_file_uses_the_newest_year_and_says_so() -> None:
    resolved = IntensityResolver().resolve("DE", datetime(2026, 5, 1, 3, tzinfo=UTC))
    assert resolved.year == 2025
    assert resolved.reason == (
        "no hourly data supplied for 2026-05-01T03:00Z; used Electricity Maps 2025 yearly for DE "
        "(asked for 2026; 2025 is the newest year available)"
    )


def test_a_sub_zone_without_yearly_data_uses_the_enclosing_zone() -> None:
    resolved = IntensityResolver().resolve("GB-CI-13", HOUR)
    assert resolved.step == "zone_yearly"
    assert resolved.intensity_g_per_kwh == 175.0  # EM yearly_2024.json, GB
    assert "no Electricity Maps yearly figure for zone GB-CI-13; GB encloses it" in resolved.reason


def test_a_country_without_an_electricity_maps_zone_falls_back_to_country_yearly() -> None:
    resolved = IntensityResolver().resolve("CHL", HOUR)  # Chile has only the CL-SEN zone
    assert resolved.step == "country_yearly"
    assert resolved.source.startswith("Ember")
    assert "used Ember" in resolved.reason and "yearly for CHL" in resolved.reason


def test_an_unknown_zone_falls_back_to_the_world_average() -> None:
    resolved = IntensityResolver().resolve("CAISO_NORTH", HOUR)
    assert resolved.step == "world"
    assert resolved.intensity_g_per_kwh == 472.94  # Ember "World", average-intensities.json
    assert resolved.reason.endswith("used Ember 2024 world average")


def test_marginal_hourly_values_are_not_used_for_accounting_unless_allowed() -> None:
    moer = record("US-CAL-CISO", HOUR, 420.0, signal="marginal")
    refused = IntensityResolver([moer]).resolve("US-CAL-CISO", HOUR)
    assert refused.step == "zone_yearly"
    assert "marginal signal" in refused.reason
    allowed = IntensityResolver([moer], allow_marginal=True).resolve("US-CAL-CISO", HOUR)
    assert allowed.step == "hourly" and allowed.signal == "marginal"


def test_measured_values_beat_forecasts_for_the_same_hour() -> None:
    table = HourlyTable([record("DE", HOUR, 100.0), record("DE", HOUR, 90.0, is_forecast=True)])
    found = table.lookup("DE", HOUR)
    assert isinstance(found, IntensityRecord) and found.intensity_g_per_kwh == 100.0


class FailingProvider(IntensityProvider):
    name = "Flaky"

    @property
    def enabled(self) -> bool:
        return True

    def latest(self, zone: str) -> IntensityRecord:
        raise ProviderTimeout(self.name, "GET /latest timed out after 5 s")

    def history(self, zone: str) -> list[IntensityRecord]:
        raise ProviderTimeout(self.name, "GET /history timed out after 5 s")

    def forecast(self, zone: str, horizon_hours: int = 24) -> list[IntensityRecord]:
        raise ProviderTimeout(self.name, "GET /forecast timed out after 5 s")


def test_a_failing_live_provider_falls_back_instead_of_crashing() -> None:
    resolved = IntensityResolver(FailingProvider()).resolve("DE", HOUR)
    assert resolved.step == "zone_yearly"
    assert "live Flaky unavailable: GET /history timed out after 5 s" in resolved.reason


def test_lookup_misses_carry_their_reason() -> None:
    assert HourlyTable([], name="site upload").lookup("DE", HOUR) == HourlyMiss(
        "no hourly data for DE at 2024-06-01T03:00Z in site upload"
    )


def test_naive_hours_are_refused() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        IntensityResolver().resolve("DE", datetime(2024, 6, 1, 3))


def test_a_plain_mapping_of_hourly_values_can_feed_the_resolver() -> None:
    table = HourlyTable.from_mapping("PL", {HOUR: 612.0}, basis="direct", source="utility meter feed")
    resolved = IntensityResolver(table).resolve("PL", HOUR)
    assert (resolved.step, resolved.intensity_g_per_kwh, resolved.basis) == ("hourly", 612.0, "direct")
    by_hour = IntensityResolver({HOUR: record("PL", HOUR, 600.0)}).resolve("PL", HOUR)
    assert by_hour.intensity_g_per_kwh == 600.0

"""UK Carbon Intensity live client against a fake server: national and regional paths, failures typed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from planner.grid_carbon.providers import (
    ProviderAuthError,
    ProviderDisabled,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnsupportedZone,
    UKCarbonIntensityProvider,
)
from tests.planner.grid_carbon.fake_http import FakeServer, Reply

FIXTURES = Path(__file__).parent / "fixtures"
NATIONAL = (FIXTURES / "uk_national_intensity.json").read_bytes()
REGION_13 = (FIXTURES / "uk_regionid_13.json").read_bytes()
NOW = datetime(2024, 5, 15, 1, 10, tzinfo=UTC)


def client(server: FakeServer, timeout_s: float = 0.5) -> UKCarbonIntensityProvider:
    return UKCarbonIntensityProvider(base_url=server.url, timeout_s=timeout_s, clock=lambda: NOW)


def test_national_history_uses_the_from_to_path(fake_server: FakeServer) -> None:
    fake_server.route("/intensity/2024-05-14T01:00Z/2024-05-15T01:00Z", Reply(NATIONAL))
    records = client(fake_server).history("GB")
    assert [r.intensity_g_per_kwh for r in records] == [133.0, 118.5, 109.5]
    assert records[0].zone == "GB"


def test_latest_and_forecast_national(fake_server: FakeServer) -> None:
    fake_server.route("/intensity", Reply(NATIONAL))
    fake_server.route("/intensity/2024-05-15T01:00Z/fw48h", Reply(NATIONAL))
    provider = client(fake_server)
    assert provider.latest("GB").intensity_g_per_kwh == 109.5
    assert len(provider.forecast("GB", horizon_hours=48)) == 3


def test_regional_zone_uses_the_region_id_paths(fake_server: FakeServer) -> None:
    fake_server.route("/regional/regionid/13", Reply(REGION_13))
    fake_server.route("/regional/intensity/2024-05-15T01:00Z/fw24h/regionid/13", Reply(REGION_13))
    provider = client(fake_server)
    assert provider.latest("GB-CI-13").zone == "GB-CI-13"
    assert [r.intensity_g_per_kwh for r in provider.forecast("GB-CI-13")] == [153.5, 141.0]


def test_a_slow_server_raises_a_timeout(fake_server: FakeServer) -> None:
    fake_server.route("/intensity", Reply(NATIONAL, delay_s=1.5))
    with pytest.raises(ProviderTimeout):
        client(fake_server, timeout_s=0.2).latest("GB")


def test_a_401_raises_an_auth_error(fake_server: FakeServer) -> None:
    fake_server.route("/intensity", Reply({"error": "unauthorised"}, status=401))
    with pytest.raises(ProviderAuthError):
        client(fake_server).latest("GB")


def test_a_server_error_raises_an_http_error(fake_server: FakeServer) -> None:
    fake_server.route("/intensity", Reply(b"", status=500))
    with pytest.raises(ProviderHTTPError) as info:
        client(fake_server).latest("GB")
    assert info.value.status == 500


@pytest.mark.parametrize(
    "body", [b"{broken", b'{"data": [{"from": "2024-05-15T01:00Z"}]}', b'{"error": {"code": "400"}}']
)
def test_a_malformed_body_raises_a_response_error(fake_server: FakeServer, body: bytes) -> None:
    fake_server.route("/intensity", Reply(body))
    with pytest.raises(ProviderResponseError):
        client(fake_server).latest("GB")


def test_zones_outside_great_britain_and_a_switched_off_client_are_refused(fake_server: FakeServer) -> None:
    with pytest.raises(ProviderUnsupportedZone):
        client(fake_server).latest("DE")
    off = UKCarbonIntensityProvider(base_url=fake_server.url, enabled=False)
    with pytest.raises(ProviderDisabled):
        off.latest("GB")
    assert fake_server.seen == []


def test_an_unreachable_server_is_a_typed_error_too() -> None:
    from planner.grid_carbon.providers import ProviderConnectionError

    with pytest.raises(ProviderConnectionError):
        UKCarbonIntensityProvider(base_url="http://127.0.0.1:9", timeout_s=0.5).latest("GB")

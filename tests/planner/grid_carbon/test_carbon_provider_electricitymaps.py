"""Electricity Maps live client against a fake server on 127.0.0.1: success, timeout, 401, 5xx, bad bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from planner.grid_carbon import IntensityResolver
from planner.grid_carbon.providers import (
    ElectricityMapsProvider,
    ProviderAuthError,
    ProviderDisabled,
    ProviderHourlyLookup,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeout,
)
from tests.planner.grid_carbon.fake_http import FakeServer, Reply

REAL_HISTORY = (
    Path(__file__).parent / "fixtures" / "electricitymaps_v3_carbon_intensity_history_US-MIDW-MISO.json"
).read_bytes()
TOKEN = "em-secret-token"


def client(server: FakeServer, **kwargs: object) -> ElectricityMapsProvider:
    return ElectricityMapsProvider(TOKEN, base_url=f"{server.url}/v3", timeout_s=5.0, **kwargs)  # type: ignore[arg-type]


def test_history_is_fetched_with_the_auth_token_header(fake_server: FakeServer) -> None:
    fake_server.route("/v3/carbon-intensity/history", Reply(REAL_HISTORY))
    records = client(fake_server).history("US-MIDW-MISO")
    assert len(records) == 24 and records[0].intensity_g_per_kwh == 501.0
    (request,) = fake_server.seen
    assert request.headers["auth-token"] == TOKEN
    assert request.query["zone"] == ["US-MIDW-MISO"]
    assert request.query["emissionFactorType"] == ["lifecycle"]


def test_latest_and_forecast_are_parsed(fake_server: FakeServer) -> None:
    fake_server.route(
        "/v3/carbon-intensity/latest",
        Reply(
            {
                "zone": "DE",
                "carbonIntensity": 302,
                "datetime": "2025-01-15T13:00:00.000Z",
                "emissionFactorType": "lifecycle",
            }
        ),
    )
    fake_server.route(
        "/v3/carbon-intensity/forecast",
        Reply({"zone": "DE", "forecast": [{"carbonIntensity": 250, "datetime": "2025-01-15T14:00:00.000Z"}]}),
    )
    provider = client(fake_server)
    assert provider.latest("DE").intensity_g_per_kwh == 302.0
    (forecast,) = provider.forecast("DE", horizon_hours=12)
    assert forecast.is_forecast and forecast.intensity_g_per_kwh == 250.0
    assert fake_server.seen[-1].query["horizonHours"] == ["12"]


def test_a_slow_server_raises_a_timeout(fake_server: FakeServer) -> None:
    fake_server.route("/v3/carbon-intensity/latest", Reply(b"{}", delay_s=1.5))
    with pytest.raises(ProviderTimeout, match=r"timed out after 0\.2 s"):
        ElectricityMapsProvider(TOKEN, base_url=f"{fake_server.url}/v3", timeout_s=0.2).latest("DE")


def test_a_refused_token_raises_an_auth_error_without_leaking_it(fake_server: FakeServer) -> None:
    fake_server.route("/v3/carbon-intensity/latest", Reply({"message": "invalid token"}, status=401))
    with pytest.raises(ProviderAuthError, match="HTTP 401") as info:
        client(fake_server).latest("DE")
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(client(fake_server))


def test_a_server_error_raises_an_http_error_with_its_status(fake_server: FakeServer) -> None:
    fake_server.route(
        "/v3/carbon-intensity/latest", Reply(b"upstream down", status=503, content_type="text/plain")
    )
    with pytest.raises(ProviderHTTPError) as info:
        client(fake_server).latest("DE")
    assert info.value.status == 503


@pytest.mark.parametrize(
    "body",
    [
        b"<html>maintenance</html>",
        b'{"zone": "DE", "history": [{"datetime": "2025-01-15T13:00:00Z"}]}',
        b"[]",
    ],
)
def test_a_malformed_body_raises_a_response_error(fake_server: FakeServer, body: bytes) -> None:
    fake_server.route("/v3/carbon-intensity/history", Reply(body))
    with pytest.raises(ProviderResponseError):
        client(fake_server).history("DE")


def test_without_a_token_the_client_is_off_and_sends_nothing(fake_server: FakeServer) -> None:
    provider = ElectricityMapsProvider(None, base_url=f"{fake_server.url}/v3")
    assert provider.enabled is False
    with pytest.raises(ProviderDisabled):
        provider.latest("DE")
    assert fake_server.seen == []


def test_the_resolver_uses_live_history_and_falls_back_when_the_token_is_refused(
    fake_server: FakeServer,
) -> None:
    clock = lambda: datetime(2024, 12, 1, 5, 40, tzinfo=UTC)  # noqa: E731
    hour = datetime(2024, 11, 30, 7, tzinfo=UTC)
    fake_server.route("/v3/carbon-intensity/history", Reply(REAL_HISTORY))
    live = IntensityResolver(ProviderHourlyLookup(client(fake_server), clock=clock)).resolve(
        "US-MIDW-MISO", hour
    )
    assert (live.step, live.intensity_g_per_kwh) == ("hourly", 419.0)

    fake_server.route("/v3/carbon-intensity/history", Reply(b"{}", status=401))
    fallback = IntensityResolver(ProviderHourlyLookup(client(fake_server), clock=clock)).resolve(
        "US-MIDW-MISO", hour
    )
    assert fallback.step == "zone_yearly"
    assert "live Electricity Maps unavailable" in fallback.reason and "HTTP 401" in fallback.reason

"""WattTime live client against a fake server: login → token, forecast/history, timeout, 401, bad bodies."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from planner.grid_carbon.providers import (
    ProviderAuthError,
    ProviderDisabled,
    ProviderResponseError,
    ProviderTimeout,
    WattTimeProvider,
)
from tests.planner.grid_carbon.fake_http import FakeServer, Reply, Seen

FIXTURES = Path(__file__).parent / "fixtures"
FORECAST = (FIXTURES / "watttime_forecast_CAISO_NORTH.json").read_bytes()
HISTORICAL = (FIXTURES / "watttime_historical_aoer_CAISO_NORTH.json").read_bytes()


def client(server: FakeServer, **kwargs: object) -> WattTimeProvider:
    return WattTimeProvider("alice", "s3cret", base_url=server.url, timeout_s=5.0, **kwargs)  # type: ignore[arg-type]


def login_ok(server: FakeServer, token: str = "tok-1") -> None:
    server.route("/login", Reply({"token": token}))


def test_login_then_forecast_with_bearer_token(fake_server: FakeServer) -> None:
    login_ok(fake_server)
    fake_server.route("/v3/forecast", Reply(FORECAST))
    records = client(fake_server).forecast("CAISO_NORTH", horizon_hours=2)
    assert len(records) == 2 and records[0].signal == "marginal"
    login, data = fake_server.seen
    assert login.headers["authorization"] == "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert data.headers["authorization"] == "Bearer tok-1"
    assert data.query == {"region": ["CAISO_NORTH"], "signal_type": ["co2_moer"], "horizon_hours": ["2"]}


def test_token_is_reused_and_history_is_filed_under_the_callers_zone(fake_server: FakeServer) -> None:
    login_ok(fake_server)
    fake_server.route("/v3/forecast", Reply(FORECAST))
    fake_server.route("/v3/historical", Reply(HISTORICAL))
    provider = client(fake_server, region_for_zone={"US-CAL-CISO": "CAISO_NORTH"}, signal_type="co2_aoer")
    provider.latest("US-CAL-CISO")
    (record,) = provider.history("US-CAL-CISO")
    assert record.zone == "US-CAL-CISO" and record.signal == "average"
    assert [s.path for s in fake_server.seen] == ["/login", "/v3/forecast", "/v3/historical"]
    assert fake_server.seen[-1].query["region"] == ["CAISO_NORTH"]
    assert "start" in fake_server.seen[-1].query and "end" in fake_server.seen[-1].query


def test_signal_index_is_a_percentile(fake_server: FakeServer) -> None:
    login_ok(fake_server)
    fake_server.route(
        "/v3/signal-index",
        Reply(
            {
                "data": [{"point_time": "2024-02-27T16:40:00+00:00", "value": 37.0}],
                "meta": {"units": "percentile"},
            }
        ),
    )
    assert client(fake_server).signal_index("CAISO_NORTH") == 37.0


def test_a_slow_server_raises_a_timeout(fake_server: FakeServer) -> None:
    login_ok(fake_server)
    fake_server.route("/v3/forecast", Reply(FORECAST, delay_s=1.5))
    with pytest.raises(ProviderTimeout):
        WattTimeProvider("alice", "s3cret", base_url=fake_server.url, timeout_s=0.2).forecast("CAISO_NORTH")


def test_refused_credentials_raise_an_auth_error_without_leaking_them(fake_server: FakeServer) -> None:
    fake_server.route("/login", Reply({"error": "bad credentials"}, status=401))
    with pytest.raises(ProviderAuthError, match="HTTP 401") as info:
        client(fake_server).forecast("CAISO_NORTH")
    assert "s3cret" not in str(info.value) and "s3cret" not in repr(client(fake_server))
    assert [s.path for s in fake_server.seen] == ["/login"]  # no retry loop on a refused login


def test_a_revoked_token_triggers_one_fresh_login(fake_server: FakeServer) -> None:
    tokens = iter(["tok-1", "tok-2"])
    fake_server.route("/login", lambda seen: Reply({"token": next(tokens)}))

    served: list[str] = []

    def forecast(seen: Seen) -> Reply:
        auth = seen.headers["authorization"]
        served.append(auth)
        if auth == "Bearer tok-1" and served.count(auth) > 1:  # tok-1 works once, then is revoked
            return Reply(b"{}", status=401)
        return Reply(FORECAST)

    fake_server.route("/v3/forecast", forecast)
    provider = client(fake_server)
    provider.forecast("CAISO_NORTH")  # tok-1 accepted
    provider.forecast("CAISO_NORTH")  # tok-1 now refused → login → tok-2
    assert [s.path for s in fake_server.seen] == [
        "/login",
        "/v3/forecast",
        "/v3/forecast",
        "/login",
        "/v3/forecast",
    ]
    assert fake_server.seen[-1].headers["authorization"] == "Bearer tok-2"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/login", {"message": "no token here"}),
        (
            "/v3/forecast",
            {
                "data": [{"point_time": "2024-02-27T16:40:00+00:00", "value": 63}],
                "meta": {"units": "percentile", "signal_type": "co2_moer", "region": "CAISO_NORTH"},
            },
        ),
        ("/v3/forecast", b"not json"),
    ],
)
def test_a_malformed_body_raises_a_response_error(fake_server: FakeServer, path: str, body: object) -> None:
    login_ok(fake_server)
    fake_server.route(path, Reply(body))  # type: ignore[arg-type]
    with pytest.raises(ProviderResponseError):
        client(fake_server).forecast("CAISO_NORTH")


def test_without_credentials_the_client_is_off(fake_server: FakeServer) -> None:
    provider = WattTimeProvider(None, None, base_url=fake_server.url)
    assert provider.enabled is False
    with pytest.raises(ProviderDisabled):
        provider.forecast("CAISO_NORTH")
    assert fake_server.seen == []

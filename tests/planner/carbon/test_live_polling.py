"""The beat task that polls live providers, against a fake server on loopback: a provider that times
out, refuses the token or sends a malformed body falls back to the next one, and never fails ingest."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from django.core.management import call_command

from dashboard.telemetry.models import Run
from planner.carbon import tasks
from planner.carbon.models import IntensityRow, ProviderStatus, RunCarbon
from tests.factories import register
from tests.planner.carbon.support import fixture, stream_hours
from tests.planner.grid_carbon.fake_http import Reply

pytestmark = pytest.mark.django_db

TOKEN = "em-secret-token-123"
UK_BODY = fixture("uk_national_intensity.json")
EM_HISTORY = fixture("electricitymaps_v3_carbon_intensity_history_US-MIDW-MISO.json")


class PrefixRoutes(dict):
    """UK paths carry timestamps (``/intensity/2026-…/2026-…``): match routes by prefix."""

    def get(self, path, default=None):
        for prefix, reply in self.items():
            if path.startswith(prefix):
                return reply
        return default


@pytest.fixture
def providers(settings, fake_server):
    fake_server.routes = PrefixRoutes()
    settings.WATTWISE_ELECTRICITYMAPS_TOKEN = TOKEN
    settings.WATTWISE_ELECTRICITYMAPS_URL = f"{fake_server.url}/v3"
    settings.WATTWISE_UK_CARBON_INTENSITY = True
    settings.WATTWISE_UK_CARBON_INTENSITY_URL = fake_server.url
    settings.WATTWISE_CARBON_PROVIDER_TIMEOUT_S = 2.0  # generous: a loaded CI box answers slowly
    settings.WATTWISE_CARBON_POLL_ZONES = ["GB"]
    fake_server.route("/intensity", Reply(UK_BODY))
    return fake_server


def poll() -> dict:
    return tasks.poll_providers.apply().get()


def status(name: str) -> ProviderStatus:
    return ProviderStatus.objects.get(provider=name)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply({"message": "invalid token"}, status=401), "HTTP 401: credentials refused"),
        (Reply(b"{}", delay_s=3.0), "timed out after 2 s"),
        (Reply(b"<html>maintenance</html>"), "not valid JSON"),
        (Reply({"zone": "GB", "history": [{"carbonIntensity": None, "datetime": "2026-01-01T00:00:00Z"}]}),
         "malformed"),
    ],
    ids=["401", "timeout", "not-json", "malformed-body"],
)
def test_a_failing_provider_falls_back_to_the_next_one(providers, reply, error):
    providers.route("/v3/carbon-intensity/", reply)
    result = poll()
    assert any(error in e for e in result["errors"]), result["errors"]
    assert result["unanswered"] == []  # UK Carbon Intensity answered for GB
    assert IntensityRow.objects.filter(zone="GB", origin=IntensityRow.Origin.LIVE, source="UK Carbon Intensity API (NESO)").count() == 3
    em = status("Electricity Maps")
    assert error in em.last_error and em.last_success_at is None
    assert TOKEN not in em.last_error
    assert status("UK Carbon Intensity").last_success_at is not None


def test_when_every_provider_fails_the_poll_reports_it_and_raises_nothing(providers):
    providers.route("/v3/carbon-intensity/", Reply(b"oops", status=500))
    providers.route("/intensity", Reply(b"oops", status=503))
    result = poll()
    assert sorted(result["unanswered"]) == ["GB forecast", "GB history"]
    assert IntensityRow.objects.count() == 0


def test_a_working_provider_stores_rows_and_recomputes_the_runs_that_used_those_hours(
    providers, settings, django_capture_on_commit_callbacks
):
    settings.WATTWISE_CARBON_POLL_ZONES = []  # poll the zones in use: here, the agent's --zone
    history = json.loads(EM_HISTORY)
    first_hour = history["history"][0]["datetime"]
    start_ms = int(datetime.fromisoformat(first_hour.replace("Z", "+00:00")).timestamp() * 1000)
    node = register("gpu-miso", "vision")
    stream_hours(node, "midwest", [1.0, 1.0], start_ms=start_ms, zone="US-MIDW-MISO")
    run = Run.objects.get(name="midwest")
    RunCarbon.objects.all().delete()
    call_command("recompute_carbon", "midwest")
    assert RunCarbon.objects.get(run=run).fallback_hours == 2  # yearly figures before the poll
    providers.route("/v3/carbon-intensity/history", Reply(EM_HISTORY))
    providers.route("/v3/carbon-intensity/forecast", Reply({"zone": "US-MIDW-MISO", "forecast": []}))
    with django_capture_on_commit_callbacks(execute=True):
        result = poll()
    assert result["stored"]["US-MIDW-MISO history"] == 24
    assert RunCarbon.objects.get(run=run).fallback_hours == 0  # recomputed with the live hourly values
    assert providers.seen[0].headers["auth-token"] == TOKEN


def test_providers_without_credentials_are_off_and_send_nothing(settings, fake_server):
    settings.WATTWISE_ELECTRICITYMAPS_TOKEN = None
    settings.WATTWISE_ELECTRICITYMAPS_URL = f"{fake_server.url}/v3"
    settings.WATTWISE_WATTTIME_USERNAME = None
    settings.WATTWISE_UK_CARBON_INTENSITY = False
    settings.WATTWISE_CARBON_POLL_ZONES = ["DE"]
    assert poll() == {"stored": {}, "errors": [], "unanswered": []}
    assert fake_server.seen == []


def test_watttime_answers_for_a_mapped_zone_after_electricity_maps_fails(providers, settings):
    settings.WATTWISE_CARBON_POLL_ZONES = ["US-CAL-CISO"]
    settings.WATTWISE_WATTTIME_USERNAME, settings.WATTWISE_WATTTIME_PASSWORD = "user", "pw-secret"
    settings.WATTWISE_WATTTIME_URL = providers.url
    settings.WATTWISE_WATTTIME_REGIONS = ["US-CAL-CISO=CAISO_NORTH"]
    settings.WATTWISE_WATTTIME_SIGNAL = "co2_aoer"
    providers.route("/v3/carbon-intensity/", Reply({"message": "nope"}, status=403))
    providers.route("/login", Reply({"token": "wt-token"}))
    providers.route("/v3/historical", Reply(fixture("watttime_historical_aoer_CAISO_NORTH.json")))
    providers.route("/v3/forecast", Reply(fixture("watttime_forecast_CAISO_NORTH.json")))
    result = poll()
    assert result["stored"] == {"US-CAL-CISO history": 1, "US-CAL-CISO forecast": 2}
    row = IntensityRow.objects.get(zone="US-CAL-CISO", is_forecast=False)
    assert row.intensity_g_per_kwh == pytest.approx(531 * 0.45359237)
    assert "pw-secret" not in status("Electricity Maps").last_error


def test_a_provider_that_hangs_never_touches_ingest_or_accounting(providers):
    """Ingest and emissions read only stored data: with every provider broken, a run streams, closes
    and gets its emissions (from yearly figures), and no request is made on its behalf."""
    providers.route("/v3/carbon-intensity/", Reply(b"{}", delay_s=5))
    providers.route("/intensity", Reply(b"{}", delay_s=5))
    node = register("gpu-gb", "vision")
    stream_hours(node, "uk-run", [1.0, 2.0], zone="GB")
    call_command("recompute_carbon", "uk-run")
    stored = RunCarbon.objects.get(run__name="uk-run")
    assert stored.emissions_g > 0 and stored.fallback_hours == 2
    assert providers.seen == []


def test_a_bug_in_one_provider_does_not_stop_the_others(providers, monkeypatch):
    from planner.grid_carbon.providers import ElectricityMapsProvider

    def broken(self, zone, *args):
        raise KeyError("surprise")

    monkeypatch.setattr(ElectricityMapsProvider, "history", broken)
    monkeypatch.setattr(ElectricityMapsProvider, "forecast", broken)
    result = poll()
    assert "GB history" in result["stored"]
    assert "unexpected error" in status("Electricity Maps").last_error

"""Carbon objects through the API: a run's emissions with their provenance and offset quote, a
project's totals, offsets ledger and region preferences, and the shared grid-intensity data."""

from __future__ import annotations

from datetime import date, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from dashboard.projects.models import Project
from dashboard.telemetry.models import Node, Run
from planner.carbon.figures import run_summary
from planner.carbon.models import (
    CreditPrice,
    CreditType,
    NodeSite,
    OffsetPolicy,
    OffsetRetirement,
    RegionPreference,
    RunCarbon,
    Site,
)
from tests.factories import register
from tests.planner.carbon.support import T0, em_hourly_csv, recompute_figures, stream_hours

pytestmark = pytest.mark.django_db

ENERGY_KWH = [2.0, 1.0, 0.5]
INTENSITY = [400.0, 250.0, 100.0]


@pytest.fixture
def located(api_world, tmp_path) -> Run:
    """A three-hour run in vision on a node sited in DE (PUE 1.25), with DE's hourly intensity imported."""
    vision = Project.objects.get(name="vision")
    node = register("gpu-de-1", "vision")
    site = Site.objects.create(project=vision, name="frankfurt", where="DE", pue=1.25)
    NodeSite.objects.create(node=Node.objects.get(name="gpu-de-1"), site=site)
    csv_file = tmp_path / "DE_hourly.csv"
    csv_file.write_text(em_hourly_csv("DE", T0, INTENSITY))
    call_command("import_intensity", str(csv_file), stdout=StringIO())
    stream_hours(node, "llama-de", ENERGY_KWH)
    recompute_figures("llama-de")
    return Run.objects.get(name="llama-de")


def test_a_runs_emissions_match_the_stored_figures_hour_by_hour(api_world, located):
    body = api_world.api.get(f"/runs/{located.pk}/carbon").json()
    summary = run_summary(located)
    assert (body["computed"], body["state"]) == (True, "current")
    assert body["run_energy_j"] == pytest.approx(body["energy_j"])
    assert body["emissions_g"] == pytest.approx(summary["emissions_g"])
    assert body["emissions_g"] == pytest.approx(sum(e * 1.25 * i for e, i in zip(ENERGY_KWH, INTENSITY, strict=True)))
    assert body["pue"] == pytest.approx(1.25)
    assert [h["intensity_g_per_kwh"] for h in body["hours"]] == pytest.approx(INTENSITY)
    assert {h["step"] for h in body["hours"]} == {"hourly"}
    assert [n["located_by"] for n in body["nodes"]] == ["site"]
    assert sum(g["emissions_g"] for g in body["gpus"]) == pytest.approx(body["emissions_g"])
    assert body["offset"]["tonnes_to_retire"] == pytest.approx(body["emissions_g"] / 1e6)


def test_the_run_detail_carries_the_stored_figures_once_computed(api_world, located):
    RunCarbon.objects.filter(run=located).delete()  # as if its recompute had not run yet
    assert api_world.api.get(f"/runs/{located.pk}").json()["carbon"] is None
    pending = api_world.api.get(f"/runs/{located.pk}/carbon").json()
    assert (pending["computed"], pending["state"], pending["emissions_g"]) == (False, "pending", None)
    assert not RunCarbon.objects.exists()  # reading computes nothing
    recompute_figures("llama-de")
    carbon = api_world.api.get(f"/runs/{located.pk}").json()["carbon"]
    assert carbon["emissions_g"] == pytest.approx(RunCarbon.objects.get(run=located).emissions_g)
    assert carbon["stale"] is False


def test_stale_figures_are_served_as_stored_and_say_so(api_world, located):
    RunCarbon.objects.filter(run=located).update(stale=True, emissions_g=1.0)
    body = api_world.api.get(f"/runs/{located.pk}/carbon").json()
    assert (body["state"], body["emissions_g"]) == ("stale", 1.0)
    assert api_world.api.get(f"/runs/{located.pk}").json()["carbon"]["stale"] is True


def test_a_run_without_energy_has_no_emissions_yet(api_world):
    run = Run.objects.create(project=Project.objects.get(name="vision"), name="empty")
    body = api_world.api.get(f"/runs/{run.pk}/carbon").json()
    assert (body["computed"], body["emissions_g"], body["hours"], body["offset"]) == (False, None, [], None)
    assert body["state"] == "no energy"


def test_the_project_totals_and_sites(api_world, located):
    body = api_world.api.get(f"/projects/{located.project_id}/carbon").json()
    stored = RunCarbon.objects.get(run=located)
    assert body["runs_with_emissions"] == 1 and body["emissions_g"] == pytest.approx(stored.emissions_g)
    assert [(s["name"], s["where"], s["pue"]) for s in body["sites"]] == [("frankfurt", "DE", 1.25)]


def test_the_offsets_ledger_uses_the_projects_price_and_lists_retirements(api_world, located):
    vision = located.project
    CreditPrice.objects.create(project=vision, credit_type=CreditType.AVOIDANCE, price_per_tonne=12.0, currency="EUR",
                               source="broker quote", as_of=date(2026, 1, 5))
    OffsetRetirement.objects.create(project=vision, run=located, retired_on=date(2026, 2, 1), credit_type=CreditType.AVOIDANCE,
                                    tonnes=0.5, price_per_tonne=12.0, currency="EUR", registry="Verra")
    body = api_world.api.get(f"/projects/{vision.pk}/carbon/offsets").json()
    (line,) = body["lines"]
    assert line["run"] == "llama-de" and line["quote"]["currency"] == "EUR"
    assert line["quote"]["cost"] == pytest.approx(line["quote"]["tonnes_to_retire"] * 12.0)
    assert body["policy"]["credit_type"] == "avoidance"
    assert (body["prices"][0]["credit_type"], body["prices"][0]["own"]) == ("avoidance", True)
    assert body["retired_tonnes"] == 0.5 and body["retirements"][0]["registry"] == "Verra"
    # The retired half tonne is netted against what the run needs; the cost says its currency.
    assert body["required_tonnes"] == pytest.approx(max(body["tonnes_to_retire"] - 0.5, 0.0))
    assert body["credits"] == body["required_tonnes"] and body["currency"] == "EUR"
    assert body["cost"] == pytest.approx(body["credits"] * 12.0)


def test_region_preferences_read_back_parsed_and_reading_creates_nothing(api_world):
    vision = Project.objects.get(name="vision")
    empty = api_world.api.get(f"/projects/{vision.pk}/carbon/preferences").json()
    assert (empty["allowed"], empty["max_intensity_g_per_kwh"], empty["updated_at"]) == ([], None, None)
    api_world.api.get(f"/projects/{vision.pk}/carbon/offsets")
    assert not RegionPreference.objects.exists() and not OffsetPolicy.objects.exists()
    RegionPreference.objects.create(project=vision, allowed="SE-SE3 1.1\naws:eu-north-1\n",
                                    max_intensity_g_per_kwh=100.0, min_renewable_pct=50.0, residency_group="EU")
    body = api_world.api.get(f"/projects/{vision.pk}/carbon/preferences").json()
    assert body["allowed"] == [{"where": "SE-SE3", "pue": 1.1}, {"where": "aws:eu-north-1", "pue": None}]
    assert (body["max_intensity_g_per_kwh"], body["min_renewable_pct"], body["residency_group"]) == (100.0, 50.0, "EU")


def test_intensity_data_sets_and_values_of_a_zone(api_world, located):
    datasets = api_world.api.get("/carbon/datasets").json()
    assert [(d["zone"], d["granularity"], d["rows"]) for d in datasets["items"]] == [("DE", "hour", 3)]
    values = api_world.api.get("/carbon/intensity", zone="DE").json()
    assert [v["intensity_g_per_kwh"] for v in values["items"]] == INTENSITY
    later = api_world.api.get("/carbon/intensity", zone="DE", from_utc=(T0 + timedelta(hours=1)).isoformat()).json()
    assert [v["intensity_g_per_kwh"] for v in later["items"]] == INTENSITY[1:]
    naive = api_world.api.get("/carbon/intensity", zone="DE", to_utc="2026-01-01T01:00:00").json()
    assert [v["intensity_g_per_kwh"] for v in naive["items"]] == INTENSITY[:2]
    imports = api_world.api.get("/carbon/imports").json()
    assert imports["count"] == 1 and imports["items"][0]["rows_created"] == 3


def test_an_inverted_intensity_range_is_a_400_and_a_far_off_one_is_empty(api_world, located):
    response = api_world.api.get("/carbon/intensity", zone="DE", from_utc="2026-01-02T00:00:00Z",
                             to_utc="2026-01-01T00:00:00Z")
    assert response.status_code == 400 and "after to_utc" in response.json()["detail"]
    assert api_world.api.get("/carbon/intensity").status_code == 400  # zone is required
    for bounds in ({"from_utc": "9999-12-31T23:00:00-05:00"}, {"to_utc": "0001-01-01T01:00:00+05:00"}):
        response = api_world.api.get("/carbon/intensity", zone="DE", **bounds)
        assert response.status_code == 200 and response.json()["count"] == 0

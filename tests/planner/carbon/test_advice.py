"""Advice: rank allowed regions and start times by predicted emissions, from stored forecasts or a
typical hour-of-day profile of imported history; preferences exclude regions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from dashboard.projects.models import Project
from dashboard.telemetry.models import Run
from planner.carbon.advising import get_advice
from planner.carbon.imports import import_file
from planner.carbon.models import RegionPreference
from tests.factories import member, register
from tests.planner.carbon.support import em_hourly_csv, recompute_figures, stream_hours

pytestmark = pytest.mark.django_db

HISTORY_START = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW_START = datetime(2026, 3, 10, 8, tzinfo=UTC)
CLEAN_NIGHT_HOURS = (0, 1, 4, 5)


def night_profile(hour: int) -> float:
    """ES in this test: clean at 00–01 and 04–05 UTC, dirty in between and all day."""
    return 20.0 if hour in CLEAN_NIGHT_HOURS else 300.0


@pytest.fixture
def project():
    days = 7 * 24
    import_file(em_hourly_csv("DE", HISTORY_START, [100.0] * days).encode(), "DE_2026_hourly.csv")
    import_file(em_hourly_csv("ES", HISTORY_START, [night_profile(h % 24) for h in range(days)]).encode(),
                "ES_2026_hourly.csv")
    project = Project.objects.create(name="nlp")
    RegionPreference.objects.create(project=project, allowed="DE\nES")
    return project


def plan(project, *, interruptible: bool):
    advice, _ = get_advice(
        project, energy_kwh=10.0, duration_h=4.0, interruptible=interruptible,
        earliest_start_utc=WINDOW_START, latest_start_utc=WINDOW_START + timedelta(hours=23),
        current_where="DE", current_pue=1.0,
    )
    return advice


def test_a_zone_with_cleaner_night_hours_moves_a_pausable_run_there(project):
    advice = plan(project, interruptible=True)
    best = advice.options[0]
    assert best.where == "ES"
    assert [h.hour for h in best.hours_utc] == list(CLEAN_NIGHT_HOURS)
    assert all(h.date() == datetime(2026, 3, 11).date() for h in best.hours_utc)
    # 2.5 kWh per hour at 20 g/kWh, against running now in DE at a flat 100 g/kWh.
    assert best.predicted_emissions_g == pytest.approx(4 * 2.5 * 20.0)
    assert advice.baseline.predicted_emissions_g == pytest.approx(4 * 2.5 * 100.0)
    assert best.saving_g == pytest.approx(800.0) and best.saving_pct == pytest.approx(80.0)
    assert best.basis_used == "typical_profile"


def test_a_run_that_cannot_pause_stays_where_no_clean_stretch_is_long_enough(project):
    advice = plan(project, interruptible=False)
    # ES has no four clean hours in a row (best stretch 20+300+300+20): DE's flat 100 beats it.
    assert advice.options[0].where == "DE" and advice.options[0].saving_g == pytest.approx(0.0)
    es = next(o for o in advice.options if o.where == "ES")
    assert es.predicted_emissions_g == pytest.approx(2.5 * (20 + 300 + 300 + 20))


def test_a_stored_forecast_beats_the_typical_profile(project):
    forecast = {"zone": "DE", "forecast": [
        {"carbonIntensity": 5, "datetime": (WINDOW_START + timedelta(hours=h)).isoformat().replace("+00:00", "Z")}
        for h in range(30)
    ]}
    import_file(json.dumps(forecast).encode(), "de-forecast.json")
    best = plan(project, interruptible=True).options[0]
    assert best.where == "DE" and best.basis_used == "forecast"
    assert best.predicted_emissions_g == pytest.approx(10.0 * 5)


def test_preferences_exclude_regions_over_the_threshold(project):
    RegionPreference.objects.filter(project=project).update(allowed="DE\nSE-SE3\nFR", max_intensity_g_per_kwh=100)
    advice = plan(project, interruptible=False)
    assert {o.where for o in advice.options} == {"SE-SE3", "FR"}
    (excluded,) = advice.excluded
    assert excluded.where == "DE" and "342 g/kWh > max 100" in excluded.reason


def test_a_minimum_renewable_share_and_residency_group_filter_the_catalogue(project):
    RegionPreference.objects.filter(project=project).update(allowed="", min_renewable_pct=80, residency_group="EEA")
    advice = plan(project, interruptible=False)
    assert [o.where for o in advice.options] == ["azure:norwayeast"]
    assert any("outside data-residency group EEA" in x.reason for x in advice.excluded)
    assert any("renewable" in x.reason and "< min 80" in x.reason for x in advice.excluded)


def test_the_advice_page_names_a_region_a_start_time_and_the_emissions_saved(client, project):
    node = register("gpu-de", "nlp")
    stream_hours(node, "bert-base", [2.5, 2.5, 2.5, 2.5], zone="DE")
    recompute_figures("bert-base")
    client.force_login(member("ana", "nlp"))
    run = Run.objects.get(name="bert-base")
    response = client.get(reverse("carbon:advice", args=[project.pk]), {
        "run": run.pk, "interruptible": "on", "earliest_start": "2026-03-10 08:00", "window_h": "23",
        "current_where": "DE",  # against running it again now in DE, not as it ran (in January)
    })
    html = response.content.decode()
    assert 'id="advice-best"' in html
    assert "run in <strong>ES</strong>" in html and "starting <strong>2026-03-11 00:00 UTC</strong>" in html
    assert "800 g CO₂e saved (80 %)" in html
    assert 'data-plot="chart-advice"' in html


def test_the_advice_form_says_what_is_missing(client, project):
    client.force_login(member("ana", "nlp"))
    html = client.get(reverse("carbon:advice", args=[project.pk]), {"energy_kwh": "5"}).content.decode()
    assert "Choose a past run, or enter both the energy (kWh) and the duration (h)." in html
    html = client.get(reverse("carbon:advice", args=[project.pk]),
                      {"energy_kwh": "5", "duration_h": "2", "window_h": "4"}).content.decode()
    assert "Say where the run would run today" in html


def test_the_preferences_page_refuses_unknown_regions_and_bad_thresholds(client, project):
    client.force_login(member("ana", "nlp"))
    response = client.post(reverse("carbon:preferences", args=[project.pk]), {
        "allowed": "SE-SE3\naws:mars-1\nFR 0.5", "min_renewable_pct": "120", "residency_group": "XX",
    })
    html = response.content.decode()
    assert "line 2: unknown cloud region" in html and "line 3: PUE 0.5 is outside" in html
    assert "less than or equal to 100" in html and "not EU, EEA or an ISO 3166" in html
    assert RegionPreference.objects.get(project=project).allowed == "DE\nES"
    response = client.post(reverse("carbon:preferences", args=[project.pk]), {"allowed": "", "min_renewable_pct": "80"})
    assert response.status_code == 302
    assert RegionPreference.objects.get(project=project).min_renewable_pct == 80


def test_the_preferences_page_previews_which_regions_pass_without_saving(client, project):
    client.force_login(member("ana", "nlp"))
    url = reverse("carbon:preferences", args=[project.pk])
    html = client.get(url).content.decode()
    assert "2 region(s) pass</strong>: DE, ES" in html  # the saved preferences
    response = client.post(url, {"allowed": "DE\nSE-SE3\nFR", "max_intensity_g_per_kwh": "100", "action": "preview"})
    html = response.content.decode()
    assert response.status_code == 200 and "Preview (not saved)" in html
    assert "2 region(s) pass</strong>: SE-SE3, FR" in html
    assert "342 g/kWh &gt; max 100" in html  # the reason, shown, not folded away
    assert RegionPreference.objects.get(project=project).allowed == "DE\nES"


def test_the_advice_page_shows_why_regions_were_excluded_unfolded(client, project):
    RegionPreference.objects.filter(project=project).update(max_intensity_g_per_kwh=200)
    client.force_login(member("ana", "nlp"))
    html = client.get(reverse("carbon:advice", args=[project.pk]), {
        "energy_kwh": "10", "duration_h": "2", "current_where": "ES", "earliest_start": "2026-03-10 08:00", "window_h": "4",
    }).content.decode()
    excluded = html[html.index('id="advice-excluded"'):]
    assert "342 g/kWh &gt; max 200" in excluded
    assert "<details" not in html[html.index('id="advice-table"'):]


def test_the_carbon_index_says_the_uk_provider_needs_no_key(client, project):
    client.force_login(member("ana", "nlp"))
    html = client.get(reverse("carbon:index")).content.decode()
    assert "UK Carbon Intensity: off (no key needed: set WATTWISE_UK_CARBON_INTENSITY=1" in html
    assert "no credentials configured" not in html


def test_the_pue_typed_for_candidates_prices_every_region_without_one_of_its_own(client, project):
    RegionPreference.objects.filter(project=project).update(allowed="DE\nES 1.2")
    client.force_login(member("ana", "nlp"))
    response = client.get(reverse("carbon:advice", args=[project.pk]), {
        "energy_kwh": "10", "duration_h": "2", "current_where": "DE", "earliest_start": "2026-03-10 08:00",
        "window_h": "0", "candidate_pue": "1.5",
    })
    pues = {o.where: o.pue for o in response.context["advice"].options}
    assert pues == {"DE": 1.5, "ES": 1.2}  # the allowed list's own PUE still wins
    assert response.context["form"]["candidate_pue"].value() == "1.5"
    de = next(o for o in response.context["advice"].options if o.where == "DE")
    assert de.predicted_emissions_g == pytest.approx(10.0 * 1.5 * 100.0)  # flat 100 g/kWh history
    assert "10.0 kWh × 1.50 × 100 g/kWh" in response.content.decode()

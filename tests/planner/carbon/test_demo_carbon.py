"""The seeded demo's run pages show a carbon section: its nodes have a site and an agent region."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.http import HttpRequest
from django.urls import reverse

from dashboard.demo import seed as demo
from dashboard.telemetry.models import Run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("quick_demo")]


def test_the_demo_run_page_shows_emissions_by_hour_for_nodes_on_a_site_and_in_a_region(
    client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # the recomputes queued as the runs close
        call_command("seed_demo", "--quiet", stdout=io.StringIO())
    # django-axes checks every sign-in against the request it came in (its documented way for the test client).
    client.login(request=HttpRequest(), username=demo.DEMO_USER, password=demo.DEMO_PASSWORD)
    run = Run.objects.get(name=demo.DEMO_RUNS[0].name)
    html = client.get(reverse("run", args=[run.pk])).content.decode()
    assert 'data-plot="chart-carbon-hourly"' in html
    assert "site assignment" in html and "agent --region" in html
    assert "demo-frankfurt" in html and "aws:eu-north-1" in html
    assert run.carbon.nodes.get(node__name="demo-node-1").pue == 1.3


def test_advice_for_the_demos_two_node_run_compares_with_what_it_emitted_at_its_own_pue(
    client, django_capture_on_commit_callbacks
):
    from dashboard.web.templatetags.units import co2
    from planner.units import J_PER_KWH

    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", "--quiet", stdout=io.StringIO())
    client.login(request=HttpRequest(), username=demo.DEMO_USER, password=demo.DEMO_PASSWORD)
    run = Run.objects.get(name=demo.DEMO_RUNS[0].name)
    stored = run.carbon
    own_pue = stored.facility_energy_kwh / (stored.energy_j / J_PER_KWH)  # DE at 1.3 and SE-SE3 at 1.0
    assert 1.0 < own_pue < 1.3
    response = client.get(reverse("carbon:advice", args=[run.project_id]), {"run": run.pk, "window_h": "0"})
    context = response.context
    advice, planned = context["advice"], context["planned"]
    # The baseline is what the run emitted (per node and hour), not "the whole run now in DE at 1.3".
    assert advice.baseline.predicted_emissions_g == pytest.approx(stored.emissions_g)
    assert co2(stored.emissions_g) in response.content.decode().split('id="advice-baseline">')[1][:40]
    # Candidates without a site of their own get the run's PUE, shown in the form to be changed.
    assert planned["candidate_pue"] == pytest.approx(own_pue, abs=1e-3)
    assert context["form"]["candidate_pue"].value() == f"{planned['candidate_pue']:g}"
    site_pues = {"DE": demo.DEMO_SITE_PUE}
    for option in advice.options:
        assert option.pue == pytest.approx(site_pues.get(option.where, own_pue), abs=1e-3)
        # Each figure is energy × PUE × the mean intensity the page prints beside it.
        assert option.predicted_emissions_g == pytest.approx(
            planned["energy_kwh"] * option.pue * option.mean_intensity_g_per_kwh
        )
        assert option.saving_g == pytest.approx(stored.emissions_g - option.predicted_emissions_g)
    assert 'id="advice-as-it-ran"' in response.content.decode()

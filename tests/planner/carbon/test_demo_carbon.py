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

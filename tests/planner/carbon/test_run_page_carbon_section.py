"""The run page's carbon section: emissions by hour with the intensity behind them, by node and GPU,
both accounting methods, offset cost and plain equivalents."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from dashboard.telemetry.models import Run
from planner.carbon.imports import import_file
from tests.factories import member, register
from tests.planner.carbon.support import T0, em_hourly_csv, recompute_figures, stream_hours

pytestmark = pytest.mark.django_db


def figures_in(html: str) -> dict[str, dict]:
    found = re.findall(r'<script type="application/json" data-plot="([\w-]+)">(.*?)</script>', html, re.S)
    return {div: json.loads(text) for div, text in found}


@pytest.fixture
def located_run(client):
    import_file(em_hourly_csv("SE-SE3", T0, [30.0, 20.0]).encode(), "SE-SE3_2026_hourly.csv")
    node = register("gpu-se-1", "vision")
    stream_hours(node, "vit-large", [1.0, 2.0, 0.5], gpus=2, zone="SE-SE3")
    recompute_figures("vit-large")
    client.force_login(member("ana", "vision"))
    return Run.objects.get(name="vit-large")


def test_the_section_shows_both_methods_offset_cost_and_an_equivalent(client, located_run):
    html = client.get(reverse("run", args=[located_run.pk])).content.decode()
    for card in ("card-emissions", "card-market-emissions", "card-pue", "card-offset", "card-equivalent"):
        assert f'id="{card}"' in html
    assert "km driven in an average new EU car" in html
    assert "never subtracted" in html


def test_emissions_by_hour_are_drawn_with_the_intensity_over_them(client, located_run):
    figures = figures_in(client.get(reverse("run", args=[located_run.pk])).content.decode())
    hourly = figures["chart-carbon-hourly"]
    kinds = [(trace["type"], trace.get("yaxis")) for trace in hourly["data"]]
    assert kinds == [("bar", None), ("scatter", "y2")]
    intensity = hourly["data"][1]
    # Two imported hours, then the zone's yearly figure for the third, drawn hollow as a fallback.
    assert intensity["marker"]["symbol"] == ["circle", "circle", "circle-open"]
    assert len(figures["chart-carbon-gpus"]["data"]) == 2  # location-based and market-based bars


def test_nodes_gpus_and_hour_by_hour_provenance_are_listed(client, located_run):
    html = client.get(reverse("run", args=[located_run.pk])).content.decode()
    assert 'id="carbon-nodes-table"' in html and "agent --zone" in html
    assert "gpu-se-1/gpu0" in html and "gpu-se-1/gpu1" in html
    assert "no hourly data for SE-SE3 at 2026-01-01T02:00Z" in html
    assert "1 of 3 node-hours used a fallback figure" in html


def test_a_run_with_no_known_location_shows_figures_but_no_hourly_charts(client):
    node = register("gpu-x", "vision")
    stream_hours(node, "nowhere", [1.0])
    recompute_figures("nowhere")
    client.force_login(member("bob", "vision"))
    html = client.get(reverse("run", args=[Run.objects.get(name="nowhere").pk])).content.decode()
    assert 'id="carbon-unlocated"' in html and "world average" in html
    assert "chart-carbon-hourly" not in figures_in(html)


def test_another_projects_carbon_pages_are_not_found(client, located_run):
    client.force_login(member("eve", "speech"))
    project_id = located_run.project_id
    for name in ("carbon:project", "carbon:sites", "carbon:preferences", "carbon:advice", "carbon:offsets",
                 "carbon:offsets_csv"):
        assert client.get(reverse(name, args=[project_id])).status_code == 404
    assert client.get(reverse("run", args=[located_run.pk])).status_code == 404


def test_carbon_pages_need_a_login(client, located_run):
    client.logout()
    for url in (reverse("carbon:index"), reverse("carbon:data"), reverse("carbon:advice", args=[1])):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_a_failure_in_the_carbon_section_never_takes_the_run_page_down(client, located_run, monkeypatch):
    from planner.carbon import section

    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(section, "state_of", broken)
    response = client.get(reverse("run", args=[located_run.pk]))
    html = response.content.decode()
    assert response.status_code == 200 and 'id="card-energy"' in html
    assert 'id="carbon-error"' in html

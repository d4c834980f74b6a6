"""The run and GPU pages show the cards and Plotly charts, with plotly.js served locally."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from dashboard.telemetry import ingest
from dashboard.telemetry.models import Run, RunGpu
from tests.factories import member, register, simple_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(client):
    node = register("node-a", "vision")
    for seq in range(3):
        ingest.ingest_batch(simple_batch(node, seq=seq, run="llama-7b"))
        ingest.ingest_batch(simple_batch(node, seq=seq, run="llama-7b", uuid="GPU-2", stream="s2", index=1))
    client.force_login(member("ana", "vision"))
    return Run.objects.get()


def figures_in(html: str) -> dict[str, dict]:
    found = re.findall(r'<script type="application/json" data-plot="([\w-]+)">(.*?)</script>', html, re.S)
    return {div: json.loads(text) for div, text in found}


def test_run_page_shows_cards_and_four_charts(client, run):
    html = client.get(reverse("run", args=[run.pk])).content.decode()
    for card in ("card-energy", "card-mean-power", "card-peak-power", "card-duration", "card-gpu-hours"):
        assert f'id="{card}"' in html
    figures = figures_in(html)
    assert set(figures) == {"chart-power", "chart-energy-per-gpu", "chart-nodes", "chart-cumulative"}
    assert len(figures["chart-power"]["data"]) == 2  # one trace per GPU


# Energy charts print in the unit that fits their largest value; their y axis title names it.
J_PER_UNIT = {"mWh": 3.6, "Wh": 3600.0, "kWh": 3.6e6, "MWh": 3.6e9, "GWh": 3.6e12}


def j_per_unit(figure: dict) -> float:
    return J_PER_UNIT[figure["layout"]["yaxis"]["title"]["text"]]


def values(array) -> np.ndarray:
    """Plotly writes numpy arrays as base64 typed arrays in figure JSON."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def test_cumulative_chart_ends_at_the_run_total(client, run):
    figures = figures_in(client.get(reverse("run", args=[run.pk])).content.decode())
    # One stacked area per node; with one node its top edge is the run's running total.
    top = values(figures["chart-cumulative"]["data"][-1]["y"])
    total_j = sum(RunGpu.objects.values_list("energy_j", flat=True))
    assert top[-1] * j_per_unit(figures["chart-cumulative"]) == pytest.approx(total_j)


def test_plotly_is_served_from_static_files_never_a_cdn(client, run):
    html = client.get(reverse("run", args=[run.pk])).content.decode()
    assert "/static/vendor/plotly.min.js" in html
    assert "cdn.plot.ly" not in html
    assert finders.find("vendor/plotly.min.js")


def test_gpu_page_shows_power_energy_clocks_utilisation_and_temperature(client, run):
    run_gpu = RunGpu.objects.filter(run=run).first()
    html = client.get(reverse("run_gpu", args=[run.pk, run_gpu.pk])).content.decode()
    assert set(figures_in(html)) == {"chart-power", "chart-energy", "chart-clock", "chart-util", "chart-temp"}
    assert run_gpu.gpu.uuid in html


def test_summary_json_matches_the_run_totals(client, run):
    summary = client.get(reverse("run_summary", args=[run.pk])).json()
    assert summary["energy_j"] == pytest.approx(sum(RunGpu.objects.values_list("energy_j", flat=True)))
    assert set(summary["gpus"]) == {"GPU-1", "GPU-2"}
    assert summary["samples"] == 60

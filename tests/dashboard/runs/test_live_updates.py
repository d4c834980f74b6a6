"""A streaming run's page updates in place: live.json gives fresh cards and figures for the same range."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from dashboard.telemetry import ingest
from dashboard.telemetry.models import Run, RunGpu
from tests.factories import member, register, simple_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def node():
    return register("node-a", "vision")


@pytest.fixture
def streaming(client, node):
    for seq in range(3):
        ingest.ingest_batch(simple_batch(node, seq=seq, run="live-run", samples=50))
    client.force_login(member("ana", "vision"))
    return Run.objects.get()


def test_a_streaming_runs_page_polls_its_live_json_for_the_same_range(client, streaming):
    html = client.get(reverse("run", args=[streaming.pk]), {"range": "15m"}).content.decode()
    assert 'id="live"' in html
    assert f'data-url="{reverse("run_live", args=[streaming.pk])}?range=15m"' in html


def test_a_finished_runs_page_does_not_poll(client, streaming):
    streaming.status = Run.Status.FINISHED
    streaming.save()
    html = client.get(reverse("run", args=[streaming.pk])).content.decode()
    assert 'id="live"' not in html


def test_live_json_carries_the_cards_and_every_chart(client, streaming):
    response = client.get(reverse("run_live", args=[streaming.pk]))
    payload = json.loads(response.content)
    assert response["Content-Type"] == "application/json"
    assert payload["status"] == "running"
    assert set(payload["plots"]) == {"chart-power", "chart-energy-per-gpu", "chart-nodes", "chart-cumulative"}
    assert 'id="card-energy"' in payload["cards_html"]
    # Every figure keeps the same uirevision, which is what keeps the user's zoom across redraws.
    assert {figure["layout"]["uirevision"] for figure in payload["plots"].values()} == {"wattwise"}


def test_samples_that_arrive_between_polls_show_up_in_the_next_one(client, streaming, node):
    before = json.loads(client.get(reverse("run_live", args=[streaming.pk])).content)
    ingest.ingest_batch(simple_batch(node, seq=3, run="live-run", samples=50))
    after = json.loads(client.get(reverse("run_live", args=[streaming.pk])).content)
    assert "150 samples" in before["cards_html"] and "200 samples" in after["cards_html"]
    assert after["span_html"].startswith("Samples from") and after["span_html"] != before["span_html"]
    assert after["plots"]["chart-cumulative"] != before["plots"]["chart-cumulative"]


def test_the_gpu_page_updates_live_too(client, streaming):
    run_gpu = RunGpu.objects.get()
    html = client.get(reverse("run_gpu", args=[streaming.pk, run_gpu.pk])).content.decode()
    assert 'id="live"' in html
    payload = json.loads(client.get(reverse("run_gpu_live", args=[streaming.pk, run_gpu.pk])).content)
    assert set(payload["plots"]) == {"chart-power", "chart-energy", "chart-clock", "chart-util", "chart-temp"}


def test_a_bad_range_in_a_poll_is_a_400_with_the_reason(client, streaming):
    response = client.get(reverse("run_live", args=[streaming.pk]), {"range": "3w"})
    assert response.status_code == 400
    assert "unknown range" in response.json()["error"]


def test_another_projects_run_is_not_found(client, streaming):
    client.force_login(member("bo", "audio"))
    assert client.get(reverse("run_live", args=[streaming.pk])).status_code == 404
    run_gpu = RunGpu.objects.get()
    assert client.get(reverse("run_gpu_live", args=[streaming.pk, run_gpu.pk])).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_stream_demo_streams_a_live_run_through_ingest_and_closes_it():
    from django.core.management import call_command

    out = __import__("io").StringIO()
    call_command("stream_demo", "--run", "live-test", "--gpus", "2", "--minutes", "0.03", stdout=out)
    run = Run.objects.get(name="live-test")
    assert run.status == Run.Status.FINISHED and run.simulated
    assert RunGpu.objects.filter(run=run).count() == 2
    assert sum(RunGpu.objects.filter(run=run).values_list("samples", flat=True)) > 0
    assert "is finished" in out.getvalue()


@pytest.mark.django_db
def test_stream_demo_refuses_a_bad_gpu_count():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--gpus"):
        call_command("stream_demo", "--gpus", "0")

"""A streaming run's carbon figures on the run, project carbon and offsets pages follow its energy within
one recompute interval: batches go through ingest and the tasks (eager, as `make run` runs them), the
pages only read, and the test moves the throttle's clock instead of sleeping."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard.telemetry.models import Run
from planner.carbon import recompute
from planner.carbon.models import RunCarbon
from tests.factories import member, register
from tests.planner.carbon.support import LiveRun

pytestmark = pytest.mark.django_db

DE_G_PER_KWH = 342.0  # no hourly data imported: DE's yearly figure


def card(html: str, card_id: str) -> str:
    found = re.search(rf'id="{card_id}">.*?<div class="value">(.*?)</div>', html, re.S)
    assert found, card_id
    return found.group(1)


def pages(client, run: Run) -> dict[str, str]:
    """The run's emissions as the run page, the project carbon page and the offsets ledger show them."""
    run_page = client.get(reverse("run", args=[run.pk])).content.decode()
    project = client.get(reverse("carbon:project", args=[run.project_id])).content.decode()
    offsets = client.get(reverse("carbon:offsets", args=[run.project_id])).content.decode()
    line = re.search(rf'>{run.name}</a>.*?<td class="num">(.*?) \(location\)</td>', offsets, re.S)
    assert line, "the run has no line in the ledger"
    return {"run": card(run_page, "card-emissions"), "project": card(project, "card-project-emissions"),
            "offsets": line.group(1), "run_page": run_page, "project_page": project}


@pytest.fixture
def clock(monkeypatch):
    class Clock:
        now = timezone.now()

    monkeypatch.setattr(recompute, "clock", lambda: Clock.now)
    return Clock


def test_a_streaming_runs_figures_follow_its_energy_within_one_recompute_interval(
    client, settings, clock, django_capture_on_commit_callbacks
):
    settings.WATTWISE_CARBON_RECOMPUTE_S = 60
    node = register("gpu-de", "llm")
    client.force_login(member("ana", "llm"))

    with django_capture_on_commit_callbacks(execute=True):
        live = LiveRun(node, "pretrain", zone="DE")
        live.hour(1.0)  # the first batch: recomputed at once (eager)
    run = Run.objects.get()
    shown = pages(client, run)
    assert {shown[k] for k in ("run", "project", "offsets")} == {"342 g CO₂e"}

    with django_capture_on_commit_callbacks(execute=True):
        live.hour(2.0)  # inside the interval: no recompute yet, and the pages say so
    shown = pages(client, run)
    assert {shown[k] for k in ("run", "project", "offsets")} == {"342 g CO₂e"}
    assert "cover 1.000 kWh of the run&#x27;s 3.000 kWh so far" in shown["run_page"]
    assert "being recomputed" in shown["project_page"]

    clock.now += timedelta(seconds=60)
    with django_capture_on_commit_callbacks(execute=True):
        live.hour(0.5)  # the interval has passed: this batch's recompute covers all 3.5 kWh
    shown = pages(client, run)
    assert {shown[k] for k in ("run", "project", "offsets")} == {"1.20 kg CO₂e"}
    assert RunCarbon.objects.get().emissions_g == pytest.approx(3.5 * DE_G_PER_KWH)
    assert 'id="carbon-state"' not in shown["run_page"]

    with django_capture_on_commit_callbacks(execute=True):
        live.hour(1.0)
        live.close()  # a run that closes is recomputed at once, whatever the interval
    shown = pages(client, run)
    assert {shown[k] for k in ("run", "project", "offsets")} == {"1.54 kg CO₂e"}
    assert Run.objects.get().status == Run.Status.FINISHED

"""Units of work: a run whose tracker reported tokens shows its energy and emissions per token on its page and in
the runs list, the compare page ranks runs by energy per token and groups them by tag, and a member can enter
(or correct) a run's units afterwards; bad input changes nothing and says why.

The runs are recorded by the agent's real Tracker (simulated GPUs on a stepped clock, so every run reads the
same simulated interval) to a run file, and uploaded through the app's real ingest functions in this thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from dashboard.telemetry import ingest
from dashboard.telemetry.models import Run, RunGpu, RunWork
from dashboard.web.templatetags.units import si
from tests.factories import T0_MS, RegisteredNode, member, register
from wattwise_agent.clock import SteppedClock
from wattwise_agent.run_upload import upload_run_file
from wattwise_agent.torch_hooks import Tracker
from wattwise_agent.transport import CallableTransport

pytestmark = pytest.mark.django_db

HANDLERS = {"open_run": ingest.open_run, "batch": ingest.ingest_batch, "close_run": ingest.close_run}


def train(node: RegisteredNode, run: str, tmp: Path, *, steps: int, tokens_per_step: int, tags: tuple[str, ...],
          seed: int) -> Run:
    """A run recorded by the Tracker, reporting its tokens as a training loop does, then uploaded."""
    clock = SteppedClock(T0_MS + seed * 3_600_000)
    out = tmp / f"{run}.jsonl"
    with Tracker(run, backend="simulated", gpus=1, clock=clock, node=node.name, out=out, rate_hz=10, window_s=1,
                 tags=tags, seed=seed, cpu=False) as tracker:
        for _ in range(steps):
            clock.advance_by(1_000)
            tracker.step()
            tracker.add_work(tokens=tokens_per_step)
    report = upload_run_file(out, CallableTransport(lambda e: HANDLERS[e["kind"]](e)), token=node.token)
    assert report.unsent == 0 and not report.refused
    return Run.objects.get(name=run)


def energy_j(run: Run) -> float:
    return sum(RunGpu.objects.filter(run=run).values_list("energy_j", flat=True))


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: Any, client: Any) -> dict[str, Run]:
    for name in ("WATTWISE_URL", "WATTWISE_BROKER_URL", "WATTWISE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    node = register("trainer-host", "vision")
    client.force_login(member("ana", "vision"))
    return {
        "lora": train(node, "lora", tmp_path, steps=12, tokens_per_step=8192, tags=("fine-tune",), seed=1),
        "full": train(node, "full", tmp_path, steps=12, tokens_per_step=1024, tags=("from-scratch",), seed=2),
        "plain": train(node, "plain", tmp_path, steps=6, tokens_per_step=0, tags=("from-scratch",), seed=3),
    }


def test_energy_per_token_appears_for_a_run_whose_tracker_reported_tokens(runs, client):
    lora = runs["lora"]
    assert lora.run_nodes.get().work == {"tokens": 12 * 8192, "steps": 12}  # close_run carried them
    per_token_j = energy_j(lora) / (12 * 8192)
    html = client.get(reverse("run", args=[lora.pk])).content.decode()
    assert f'<td class="num" id="energy-per-tokens">{si(per_token_j, "J")}</td>' in html
    assert "reported by the tracker" in html
    listed = client.get(reverse("runs")).content.decode()
    assert f"{si(per_token_j, 'J')}/token" in listed
    # A run that reported no tokens shows energy per step (its step markers) instead.
    assert f"{si(energy_j(runs['plain']) / 6, 'J')}/step" in listed


def test_the_compare_page_ranks_runs_by_energy_per_token_and_groups_them_by_tag(runs, client):
    response = client.get(reverse("compare"), {"runs": "full,plain,lora"})
    assert response.status_code == 200
    assert response.context["work_unit"] == "tokens"
    ranked = [(r.place, r.totals.run.name) for r in response.context["ranked"]]
    # lora did 8 x the tokens of full over the same simulated time: it uses far less energy per token.
    assert ranked == [(1, "lora"), (2, "full"), (None, "plain")]
    html = response.content.decode()
    ranking = html[html.index('id="rank-by-energy-per-unit"'):]
    assert ranking.index('data-run="lora"') < ranking.index('data-run="full"') < ranking.index('data-run="plain"')
    families = {f.tag: f for f in response.context["families"]}
    assert set(families) == {"fine-tune", "from-scratch"}
    # A family's energy per token counts only its runs that report tokens: plain's energy is left out.
    assert families["from-scratch"].energy_per("tokens") == pytest.approx(energy_j(runs["full"]) / (12 * 1024))
    assert families["from-scratch"].runs == 2
    rows = {r.key: r for r in response.context["rows"]}
    assert rows["j_per_token"].cells[2].text == si(energy_j(runs["lora"]) / (12 * 8192), "J")


def test_a_member_enters_units_of_work_and_bad_input_changes_nothing(runs, client):
    plain = runs["plain"]
    url = reverse("run_work", args=[plain.pk])
    response = client.post(url, {"tokens": "1,000,000", "samples": "", "steps": ""}, follow=True)
    assert "Units of work saved." in response.content.decode()
    assert RunWork.objects.get(run=plain).amount == 1_000_000
    page = client.get(reverse("run", args=[plain.pk])).content.decode()
    assert si(energy_j(plain) / 1_000_000, "J") in page and "entered on this page" in page

    response = client.post(url, {"tokens": "12.5", "samples": "-3"}, follow=True)
    assert "tokens: expected a whole number" in response.content.decode()
    assert RunWork.objects.get(run=plain).amount == 1_000_000  # unchanged
    assert client.get(url).status_code == 405  # a GET never writes
    client.post(url, {"tokens": ""})  # blank: back to what the tracker reported
    assert not RunWork.objects.filter(run=plain).exists()

    client.force_login(member("eve", "other"))
    assert client.post(url, {"tokens": "5"}).status_code == 404
    assert not RunWork.objects.exists()


def test_the_tracker_refuses_a_count_that_is_not_one():
    tracker = Tracker("r", backend="simulated", gpus=1)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="tokens: expected a non-negative whole number"):
            tracker.add_work(tokens=bad)
    tracker.add_work(tokens=5, samples=2)
    tracker.set_work(tokens=7)
    assert tracker.work == {"tokens": 7, "samples": 2}

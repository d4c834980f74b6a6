"""A finished run's page is computed once and cached (Django's cache on Redis here), and anything it is drawn
from changes it: late samples, a carbon recompute, a close, units of work, offset prices. Access is checked
before the cache is read, nothing of one viewer reaches another, and a live run is never served stale."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Max, Sum
from django.test import Client
from django.urls import reverse

from dashboard.runs import page_cache, views
from dashboard.telemetry import ingest, versions
from dashboard.telemetry.models import Run, RunGpu
from planner.carbon.accounting import store_run_carbon
from planner.carbon.models import CreditPrice
from tests.factories import T0_MS, envelope, member, register, simple_batch

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_page_cache")]


@pytest.fixture
def builds(monkeypatch) -> list[int]:
    """The run ids whose page was computed (not read from the cache), in order."""
    built: list[int] = []
    real = views.run_page

    def counting(run, choice, *, now_ms):
        built.append(run.pk)
        return real(run, choice, now_ms=now_ms)

    monkeypatch.setattr(views, "run_page", counting)
    return built


def open_message(node, run: str = "cached-run", stream: str = "s1"):
    return envelope(node, {"run": run, "stream": stream, "started_ms": T0_MS, "simulated": False,
                           "backend": "nvml", "host": node.name, "tags": ["llm"], "gpus": []}, kind="open_run")


def close_message(node, last_seq: int, run: str = "cached-run"):
    return envelope(node, {"run": run, "stream": "s1", "ended_ms": T0_MS + 60_000, "last_seq": last_seq,
                           "samples_sent": 10 * (last_seq + 1)}, kind="close_run")


def streamed(node, seqs, run: str = "cached-run") -> None:
    for seq in seqs:
        assert ingest.ingest_batch(simple_batch(node, seq=seq, run=run)).status == "stored"


@pytest.fixture
def finished(client, django_capture_on_commit_callbacks):
    """A finished run of project vision, with a member of it signed in to ``client``."""
    node = register("node-a", "vision")
    with django_capture_on_commit_callbacks(execute=True):
        assert ingest.open_run(open_message(node)).status == "opened"
        streamed(node, range(3))
        assert ingest.close_run(close_message(node, last_seq=2)).status == "closed"
    client.force_login(member("ana", "vision"))
    run = Run.objects.get(name="cached-run")
    assert run.status == Run.Status.FINISHED
    return node, run


def page(client, run, url: str | None = None) -> str:
    """The run page (or the page at ``url``), less its CSRF tokens (masked afresh on every response)."""
    response = client.get(url or reverse("run", args=[run.pk]))
    assert response.status_code == 200
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


def samples_shown(html: str) -> int:
    """The samples column of the GPU table."""
    table = html[html.index('id="gpus-table"'):]
    return int(re.findall(r'<td class="num">([\d,]+)</td>', table)[0].replace(",", ""))


def test_a_finished_runs_page_is_computed_once(client, finished, builds):
    _, run = finished
    first, second = page(client, run), page(client, run)
    assert builds == [run.pk]
    assert first == second


def test_a_late_sample_changes_the_cached_page(client, finished, builds, django_capture_on_commit_callbacks):
    node, run = finished
    assert samples_shown(page(client, run)) == 30
    with django_capture_on_commit_callbacks(execute=True):  # the writer announces it: a new version token
        streamed(node, [3])
    assert samples_shown(page(client, run)) == 40
    assert builds == [run.pk, run.pk]


def test_a_late_sample_changes_the_page_even_unannounced(client, finished):
    """Where the cache is not the writer's (the embedded default beside another process), the stamp read
    with the run still tells: the announcement is never sent here (its transaction never commits)."""
    node, run = finished
    assert samples_shown(page(client, run)) == 30
    streamed(node, [3])
    assert samples_shown(page(client, run)) == 40


def test_the_page_and_the_plan_figures_read_the_same_samples_stamp(finished):
    """The run page's key reads a run's samples stamp in its access-checked statement, the realised plan
    figures' key (``planner.plans.measured``) reads many runs' in one: the same text, from one definition,
    naming the run's stored samples, last sample and energy, and both follow a late batch."""
    node, run = finished
    ana = get_user_model().objects.get(username="ana")
    idle = Run.objects.create(project=run.project, name="no-samples")

    def both() -> tuple[str, str | None]:
        in_page = page_cache.stamp(page_cache.visible_run(ana, run.pk)).split("/")[0]
        return in_page, versions.samples_stamps([run.pk, idle.pk, 10**9])[run.pk]

    in_page, in_figures = both()
    assert in_page == in_figures
    totals = RunGpu.objects.filter(run=run).aggregate(samples=Sum("samples"), last_ms=Max("last_ms"),
                                                      energy_j=Sum("energy_j"))
    samples, last_ms, energy_j = in_page.split(":")
    assert (int(samples), int(last_ms)) == (totals["samples"], totals["last_ms"]) and int(samples) == 30
    assert float(energy_j) == pytest.approx(totals["energy_j"]) and totals["energy_j"] > 0
    assert versions.samples_stamps([idle.pk, 10**9]) == {idle.pk: None}  # no samples; no such run
    assert page_cache.stamp(page_cache.visible_run(ana, idle.pk)).startswith("-/")

    streamed(node, [3])
    late_page, late_figures = both()
    assert late_page == late_figures != in_page
    assert late_page.startswith("40:")


def test_a_carbon_recompute_changes_the_cached_page(client, finished, builds, django_capture_on_commit_callbacks):
    _, run = finished
    from planner.carbon.models import RunCarbon

    RunCarbon.objects.filter(run=run).delete()
    before = page(client, run)
    assert 'id="carbon-pending"' in before and 'id="carbon-section"' not in before
    assert page(client, run) == before and len(builds) == 1
    with django_capture_on_commit_callbacks(execute=True):
        store_run_carbon(run)
    after = page(client, run)
    assert 'id="carbon-section"' in after and 'id="carbon-pending"' not in after


def test_figures_flagged_stale_change_the_cached_page(client, finished):
    _, run = finished
    from planner.carbon.models import RunCarbon

    assert 'data-state="current"' in page(client, run)
    RunCarbon.objects.filter(run=run).update(stale=True)  # as an intensity import flags them, in bulk
    assert 'data-state="current"' not in page(client, run)


def test_reopening_and_closing_again_change_the_page(client, finished, django_capture_on_commit_callbacks):
    node, run = finished
    assert 'id="run-status">finished' in page(client, run)
    with django_capture_on_commit_callbacks(execute=True):
        assert ingest.open_run(open_message(node, stream="s2")).status == "opened"  # a second session
    html = page(client, run)
    assert 'id="run-status">running' in html and 'id="live"' in html


def test_raw_samples_expiring_change_the_cached_page(client, finished):
    """The retention's beat task records a new horizon without touching the run: the page must still tell."""
    from django.utils import timezone

    from dashboard.telemetry.models import RawHorizon, RunGpu

    _, run = finished
    assert "Raw data expired" not in page(client, run)
    last_ms = RunGpu.objects.get(run=run).last_ms
    RawHorizon.objects.create(windows_before_ms=last_ms + 1, receipts_before=timezone.now(), retention_days=90,
                              applied_at=timezone.now())
    assert "Raw data expired" in page(client, run)


def test_units_of_work_entered_change_the_cached_page(client, finished):
    _, run = finished
    assert 'id="work-table"' not in page(client, run)
    response = client.post(reverse("run_work", args=[run.pk]), {"tokens": "1000000"})
    assert response.status_code == 302
    assert 'id="energy-per-tokens"' in page(client, run)


def test_a_projects_offset_prices_change_its_cached_pages(client, finished, builds,
                                                           django_capture_on_commit_callbacks):
    _, run = finished
    page(client, run)
    with django_capture_on_commit_callbacks(execute=True):
        CreditPrice.objects.create(project_id=run.project_id, credit_type="removal", price_per_tonne=123.0,
                                   source="test", as_of="2026-01-01")
    page(client, run)
    assert builds == [run.pk, run.pk]


def test_another_projects_user_cannot_get_a_cached_page(client, finished, builds):
    _, run = finished
    cached = page(client, run)
    outsider = Client()
    outsider.force_login(member("eve", "other"))
    response = outsider.get(reverse("run", args=[run.pk]))
    assert response.status_code == 404
    assert run.name not in response.content.decode() and len(cached) > len(response.content)
    assert builds == [run.pk]


def test_each_viewer_gets_their_own_csrf_token_in_a_cached_page(client, finished):
    _, run = finished
    page(client, run)  # ana's view fills the cache
    bob = Client(enforce_csrf_checks=True)
    bob.force_login(member("bob", "vision"))
    html = bob.get(reverse("run", args=[run.pk])).content.decode()
    assert page_cache.CSRF_PLACEHOLDER not in html
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html[html.index('id="work-form"'):])
    assert found is not None
    token = found.group(1)
    response = bob.post(reverse("run_work", args=[run.pk]), {"tokens": "5", "csrfmiddlewaretoken": token})
    assert response.status_code == 302  # accepted: the token was bob's


def test_a_live_run_is_never_served_stale(client, builds):
    node = register("node-a", "vision")
    assert ingest.open_run(open_message(node)).status == "opened"
    streamed(node, range(2))
    client.force_login(member("ana", "vision"))
    run = Run.objects.get(name="cached-run")
    assert samples_shown(page(client, run)) == 20
    streamed(node, [2])  # not announced (no commit in this test): a live page must not need it
    assert samples_shown(page(client, run)) == 30
    assert builds == [run.pk, run.pk]


def test_a_carbon_section_that_could_not_be_read_is_not_kept(client, finished, monkeypatch):
    _, run = finished
    from planner.carbon import section

    real = section._section

    def broken(run):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(section, "_section", broken)
    assert 'id="carbon-error"' in page(client, run)
    monkeypatch.setattr(section, "_section", real)
    assert 'id="carbon-section"' in page(client, run)


def test_a_finished_runs_gpu_page_is_cached_and_follows_late_samples(client, finished, monkeypatch):
    node, run = finished
    built: list[int] = []
    real = views.gpu_page

    def counting(run, run_gpu, choice, *, now_ms):
        built.append(run_gpu.pk)
        return real(run, run_gpu, choice, now_ms=now_ms)

    monkeypatch.setattr(views, "gpu_page", counting)
    run_gpu = run.run_gpus.get()
    url = reverse("run_gpu", args=[run.pk, run_gpu.pk])
    first = page(client, run, url)
    assert page(client, run, url) == first and built == [run_gpu.pk]
    streamed(node, [3])  # unannounced: the stamp read with the run tells
    assert page(client, run, url) != first and built == [run_gpu.pk, run_gpu.pk]
    outsider = Client()
    outsider.force_login(member("eve", "other"))
    assert outsider.get(url).status_code == 404

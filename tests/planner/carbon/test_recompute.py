"""Stored figures follow their inputs through tasks: a run that finishes is computed, importing intensity
for its hours or changing its project's sites recomputes it, samples of a streaming run queue at most one
recompute per interval, and reading figures never computes them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.projects.models import Project
from dashboard.telemetry.models import Node, Run
from planner.carbon import recompute, tasks
from planner.carbon.figures import CarbonState, run_carbon, run_section
from planner.carbon.imports import import_file
from planner.carbon.models import Certificate, NodeSite, RecomputeClaim, RunCarbon, Site
from tests.factories import T0_MS, register
from tests.planner.carbon.support import T0, LiveRun, em_hourly_csv, recompute_figures, stream_hours

pytestmark = pytest.mark.django_db


def test_a_run_is_computed_when_it_finishes(django_capture_on_commit_callbacks):
    node = register("n1", "p")
    with django_capture_on_commit_callbacks(execute=True):
        stream_hours(node, "r", [1.0, 1.0], zone="DE")
    stored = RunCarbon.objects.get(run__name="r")
    assert stored.energy_j == pytest.approx(2 * 3.6e6) and stored.emissions_g == pytest.approx(2 * 342.0)


def test_importing_intensity_for_its_hours_recomputes_a_run(django_capture_on_commit_callbacks):
    node = register("n1", "p")
    with django_capture_on_commit_callbacks(execute=True):
        stream_hours(node, "r", [1.0, 1.0], zone="DE")
    assert RunCarbon.objects.get().fallback_hours == 2
    with django_capture_on_commit_callbacks(execute=True):
        result = import_file(em_hourly_csv("DE", T0, [100.0, 200.0]).encode(), "DE_2026_hourly.csv")
    assert result.runs_marked_stale == 1
    stored = RunCarbon.objects.get()
    assert (stored.fallback_hours, stored.stale) == (0, False)
    assert stored.emissions_g == pytest.approx(300.0)


def test_intensity_for_another_zone_or_time_leaves_a_run_alone(django_capture_on_commit_callbacks):
    node = register("n1", "p")
    with django_capture_on_commit_callbacks(execute=True):
        stream_hours(node, "r", [1.0], zone="DE")
        result = import_file(em_hourly_csv("FR", T0, [30.0]).encode(), "FR_2026_hourly.csv")
    assert result.runs_marked_stale == 0 and not RunCarbon.objects.get().stale


def test_changing_a_site_marks_the_project_stale_and_the_periodic_task_catches_up(django_capture_on_commit_callbacks):
    node = register("n1", "p")
    site = Site.objects.create(project=Project.objects.get(name="p"), name="dc", where="DE", pue=1.0)
    NodeSite.objects.create(node=Node.objects.get(name="n1"), site=site)
    with django_capture_on_commit_callbacks(execute=True):
        stream_hours(node, "r", [1.0])
    site.pue = 1.5
    site.save()  # queued recompute not executed here: the beat task must catch up
    assert RunCarbon.objects.get().stale
    assert tasks.recompute_stale.apply().get() == {"recomputed": 1}
    stored = RunCarbon.objects.get()
    assert not stored.stale and stored.emissions_g == pytest.approx(1.5 * 342.0)


def test_reading_figures_behind_the_runs_energy_says_so_and_computes_nothing():
    node = register("n1", "p")
    live = LiveRun(node, "r", zone="DE")
    live.hour(1.0)
    run = Run.objects.get()
    assert run_section(run)["pending"] and not RunCarbon.objects.exists()
    recompute_figures("r")
    live.hour(0.5)  # one more batch arrives while the run is still going; its recompute is not due yet
    with CaptureQueriesContext(connection) as queries:
        section = run_section(run)
        figures = run_carbon(run, gpus=True)
    assert not [q for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert section["stored"].energy_j == pytest.approx(3.6e6) and section["state"] is CarbonState.BEHIND
    assert "cover 1.000 kWh of the run's 1.500 kWh so far" in section["notice"]
    assert figures.state is CarbonState.BEHIND and figures.run_energy_j == pytest.approx(1.5 * 3.6e6)


def test_certificates_are_shared_between_runs_by_their_energy():
    node = register("n1", "p")
    project = Project.objects.get(name="p")
    Certificate.objects.create(project=project, energy_kwh=1.0, vintage_year=2026, market_boundary="EU", retired=True)
    stream_hours(node, "a", [1.0], zone="DE")
    stream_hours(node, "b", [3.0], zone="DE", start_ms=T0_MS + 7_200_000)
    recompute_figures("a")
    recompute_figures("b")  # b's energy changes the project's total: a becomes stale
    assert RunCarbon.objects.get(run__name="a").stale
    tasks.recompute_stale.apply()
    a, b = RunCarbon.objects.get(run__name="a"), RunCarbon.objects.get(run__name="b")
    # 1 kWh of certificates over 4 kWh: a gets 0.25 kWh, b 0.75 kWh; the rest at the grid's 342 g/kWh.
    assert a.market_emissions_g == pytest.approx((1.0 - 0.25) * 342.0)
    assert b.market_emissions_g == pytest.approx((3.0 - 0.75) * 342.0)
    assert a.market_emissions_g + b.market_emissions_g == pytest.approx((4.0 - 1.0) * 342.0)


def test_a_broker_that_is_down_never_fails_ingest_and_the_periodic_task_catches_up(
    monkeypatch, django_capture_on_commit_callbacks, caplog
):
    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(tasks.recompute_run, "apply_async", refuse)
    node = register("n1", "p")
    with django_capture_on_commit_callbacks(execute=True):
        stream_hours(node, "r", [1.0], zone="DE")
    assert Run.objects.get().status == Run.Status.FINISHED
    assert "could not queue carbon.recompute_run" in caplog.text
    assert not RunCarbon.objects.exists()
    assert tasks.recompute_stale.apply().get() == {"recomputed": 1}  # a run with energy and no figures
    assert RunCarbon.objects.get().emissions_g == pytest.approx(342.0)


def test_a_failing_throttle_never_fails_ingest(monkeypatch, django_capture_on_commit_callbacks, caplog):
    def broken(*args):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(recompute, "_claim", broken)
    node = register("n1", "p")
    with django_capture_on_commit_callbacks(execute=True):
        live = LiveRun(node, "r", zone="DE")
        live.hour(1.0)
    assert Run.objects.get().run_gpus.get().energy_j == pytest.approx(3.6e6)
    assert "could not queue the carbon recompute of run" in caplog.text


# --- while a run streams -----------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """A clock the test moves: ``clock.now += timedelta(...)``."""

    class Clock:
        now = timezone.now()

    monkeypatch.setattr(recompute, "clock", lambda: Clock.now)
    return Clock


@pytest.fixture
def queued(monkeypatch):
    """The recomputes queued, as (run id, kwargs, countdown), instead of running them."""
    calls: list[tuple[int, dict, float | None]] = []
    monkeypatch.setattr(tasks.recompute_run, "apply_async",
                        lambda args, kwargs=None, countdown=None, **_: calls.append((args[0], kwargs, countdown)))
    return calls


def test_samples_queue_one_recompute_per_interval_to_run_when_the_interval_ends(settings, clock, queued):
    settings.WATTWISE_CARBON_RECOMPUTE_S = 60
    run = Run.objects.create(project=Project.objects.create(name="p"), name="r")
    assert recompute.samples_stored(run.pk)
    assert queued == [(run.pk, {"if_behind": True}, 60.0)]
    clock.now += timedelta(seconds=59)
    assert not recompute.samples_stored(run.pk)
    clock.now += timedelta(seconds=1)
    assert recompute.samples_stored(run.pk) and len(queued) == 2
    assert RecomputeClaim.objects.get().queued_at == clock.now


def test_worker_processes_share_the_claim_and_remember_it_without_asking_again(settings, clock, queued, monkeypatch):
    settings.WATTWISE_CARBON_RECOMPUTE_S = 60
    run = Run.objects.create(project=Project.objects.create(name="p"), name="r")
    first, second = recompute.ClaimMemo(), recompute.ClaimMemo()
    monkeypatch.setattr(recompute, "_worker_memo", lambda: first)
    assert recompute.samples_stored(run.pk)
    monkeypatch.setattr(recompute, "_worker_memo", lambda: second)  # another process, same moment: the database says no
    clock.now += timedelta(seconds=10)
    assert not recompute.samples_stored(run.pk)
    for memo in (first, second):
        monkeypatch.setattr(recompute, "_worker_memo", lambda memo=memo: memo)
        with CaptureQueriesContext(connection) as queries:
            assert not recompute.samples_stored(run.pk)
        assert len(queries) == 0  # the batches inside the interval cost no query
    clock.now += timedelta(seconds=50)
    assert recompute.samples_stored(run.pk)
    assert len(queued) == 2


def test_a_queued_recompute_leaves_current_figures_alone():
    node = register("n1", "p")
    stream_hours(node, "r", [1.0], zone="DE")
    recompute_figures("r")
    computed_at = RunCarbon.objects.get().computed_at
    assert tasks.recompute_run.apply(args=[Run.objects.get().pk], kwargs={"if_behind": True}).get()["status"] == "stored"
    assert RunCarbon.objects.get().computed_at == computed_at

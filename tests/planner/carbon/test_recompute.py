"""Stored figures follow their inputs: a run that finishes is computed, importing intensity for its
hours or changing its project's sites recomputes it, and a page never shows figures behind the energy."""

from __future__ import annotations

import pytest

from dashboard.projects.models import Project
from dashboard.telemetry import ingest
from dashboard.telemetry.models import Node, Run
from planner.carbon import tasks
from planner.carbon.imports import import_file
from planner.carbon.models import Certificate, NodeSite, RunCarbon, Site
from planner.carbon.section import run_section
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, register
from tests.planner.carbon.support import T0, em_hourly_csv, stream_hours

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


def test_the_run_page_never_shows_figures_behind_the_runs_energy():
    node = register("n1", "p")
    stream_hours(node, "r", [1.0], zone="DE", close=False)
    run = Run.objects.get()
    assert run_section(run)["stored"].energy_j == pytest.approx(3.6e6)
    # One more batch arrives while the run is still going.
    t_ms = [T0_MS + 3_600_000 + 10_000, T0_MS + 3_600_000 + 20 * 60_000]
    stream = Run.objects.get().run_nodes.get().stream
    counter = 1_000_000_000 + 3_600_000_000
    batch = batch_payload([gpu_entry("GPU-n1-0", t_ms, [counter, counter + 1_800_000_000],
                                     prev=(T0_MS + 50 * 60_000, counter))], run="r", stream=stream, seq=1)
    assert ingest.ingest_batch(envelope(node, batch)).status == "stored"
    assert run_section(run)["stored"].energy_j == pytest.approx(1.5 * 3.6e6)


def test_certificates_are_shared_between_runs_by_their_energy():
    node = register("n1", "p")
    project = Project.objects.get(name="p")
    Certificate.objects.create(project=project, energy_kwh=1.0, vintage_year=2026, market_boundary="EU", retired=True)
    stream_hours(node, "a", [1.0], zone="DE")
    stream_hours(node, "b", [3.0], zone="DE", start_ms=T0_MS + 7_200_000)
    run_section(Run.objects.get(name="a"))
    run_section(Run.objects.get(name="b"))  # b's energy changes the project's total: a becomes stale
    tasks.recompute_stale.apply()
    a, b = RunCarbon.objects.get(run__name="a"), RunCarbon.objects.get(run__name="b")
    # 1 kWh of certificates over 4 kWh: a gets 0.25 kWh, b 0.75 kWh; the rest at the grid's 342 g/kWh.
    assert a.market_emissions_g == pytest.approx((1.0 - 0.25) * 342.0)
    assert b.market_emissions_g == pytest.approx((3.0 - 0.75) * 342.0)
    assert a.market_emissions_g + b.market_emissions_g == pytest.approx((4.0 - 1.0) * 342.0)


def test_a_broker_that_is_down_never_fails_the_close_of_a_run(monkeypatch, django_capture_on_commit_callbacks, caplog):
    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(tasks.recompute_run, "delay", refuse)
    node = register("n1", "p")
    with django_capture_on_commit_callbacks(execute=True):
        stream_hours(node, "r", [1.0], zone="DE")
    assert Run.objects.get().status == Run.FINISHED
    assert "could not queue carbon.recompute_run" in caplog.text
    assert run_section(Run.objects.get())["stored"].emissions_g == pytest.approx(342.0)  # the page catches up

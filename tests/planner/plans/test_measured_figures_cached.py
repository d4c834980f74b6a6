"""A finished run's realised plan figures are read from its markers once, then from Django's cache (Redis
here), so the frontier runs API and the plan page read no markers of finished runs on the next view; a late
marker (a batch stored after the run finished) changes them, announced or not. A running run is read afresh."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard.projects.models import Project
from dashboard.telemetry.models import Run
from planner.plans import profiles
from tests.factories import T0_MS, register
from tests.planner.plans.conftest import SMALL, small_csv, solve_now
from tests.planner.plans.loop_runs import (
    STEP_MS,
    close_stream,
    iteration_events,
    plan_fields,
    store_run,
    store_window,
)
from tests.planner.plans.test_api_frontier_runs import BASE_ENERGY, BASE_TIMES, PLAN_ENERGY, PLAN_TIMES

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_page_cache")]

MARKERS_READ = '"dashboard_runevent"."t_ms"'  # what reading a run's markers selects (measured.run_events)


@pytest.fixture
def finished_loop(api_world, django_capture_on_commit_callbacks):
    """A baseline run and a planned run of one frontier, both finished (one batch each, seq 0)."""
    job = solve_now(profiles.store_upload(Project.objects.get(name="vision"), small_csv(), name="small").profile, SMALL)
    node = register("loop-node", "vision")
    plan = plan_fields(job.pk, 4, predicted_time_s=1.0, predicted_energy_j=170.0, baseline_time_s=0.99,
                       baseline_energy_j=200.0)
    with django_capture_on_commit_callbacks(execute=True):
        store_run(node, "loop-baseline", iteration_events(BASE_TIMES, BASE_ENERGY))
        store_run(node, "loop-planned", iteration_events(PLAN_TIMES, PLAN_ENERGY, plans={(0, 0): plan, (1, 0): plan}))
        baseline, planned = close_stream(node, "loop-baseline", 0), close_stream(node, "loop-planned", 0)
    assert baseline.status == planned.status == Run.Status.FINISHED
    return job, node, baseline, planned


def view(api_world, job) -> tuple[dict, int]:
    """The frontier runs API's one item, and how many statements read a run's markers for it."""
    with CaptureQueriesContext(connection) as queries:
        body = api_world.api.get(f"/planner/frontiers/{job.pk}/runs").json()
    [item] = body["items"]
    return item, sum(MARKERS_READ in q["sql"] for q in queries.captured_queries)


def late_iterations(energy_j: float) -> list[dict]:
    """Steps 8 and 9 of both ranks, each taking 1 s and ``energy_j`` J, in the run's second 5 s batch."""
    t_ms = T0_MS + 5_000 + STEP_MS // 2
    return [{"t_ms": t_ms + STEP_MS * i, "kind": "iteration", "rank": rank, "step": 8 + i, "time_s": 1.0,
             "wait_s": 0.0, "energy_j": energy_j} for i in range(2) for rank in range(2)]


def test_the_second_view_reads_no_markers_of_finished_runs(api_world, finished_loop):
    job, _, _, _ = finished_loop
    first, read_first = view(api_world, job)
    second, read_second = view(api_world, job)
    assert read_first == 2  # the planned run and its baseline run
    assert read_second == 0
    assert second == first
    assert first["realised_energy_j"] == pytest.approx(166.0)


def test_a_late_marker_changes_the_cached_figures(api_world, finished_loop, django_capture_on_commit_callbacks):
    job, node, _, planned = finished_loop
    before, _ = view(api_world, job)
    with django_capture_on_commit_callbacks(execute=True):  # announced: the run's version token is replaced
        store_window(node, "loop-planned", 1, late_iterations(energy_j=500.0))
    assert Run.objects.get(pk=planned.pk).status == Run.Status.FINISHED
    after, read = view(api_world, job)
    assert read == 1  # the planned run again; its baseline run still from the cache
    assert after["iterations"] == before["iterations"] + 2
    assert after["realised_energy_j"] > before["realised_energy_j"]


def test_a_late_marker_changes_the_figures_even_unannounced(api_world, finished_loop):
    """Where the cache is not the writer's, the samples stamp read with the runs still tells (the
    announcement is never sent here: its transaction never commits)."""
    job, node, _, _ = finished_loop
    before, _ = view(api_world, job)
    store_window(node, "loop-planned", 1, late_iterations(energy_j=500.0))
    after, read = view(api_world, job)
    assert read == 1 and after["iterations"] == before["iterations"] + 2


def test_a_running_runs_figures_are_read_on_every_view(api_world, finished_loop):
    job, _, _, planned = finished_loop
    Run.objects.filter(pk=planned.pk).update(status=Run.Status.RUNNING, ended_at=None)  # as reopening does
    reads = [view(api_world, job)[1] for _ in range(2)]
    assert reads == [2, 1]  # the running run each time; its finished baseline run the first time only

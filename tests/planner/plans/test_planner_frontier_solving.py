"""Planning runs as a Celery task: queued after commit, progress written as it solves, the frontier stored
compactly, the same request never solved twice, and a failure shown on the page."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from dashboard.projects.models import Project
from planner import perseus
from planner.perseus.solver import solve
from planner.plans import planning, profiles
from planner.plans.models import FrontierJob
from tests.planner.plans.conftest import GPT3, SMALL, solve_now

pytestmark = pytest.mark.django_db

FORM = {"num_microbatches": 4, "unit_time_ms": 1, "p_blocking_w": 83.64, "schedule": "1f1b", "mode": "default"}


def test_asking_for_a_frontier_queues_a_solve_after_commit_and_opens_its_page(
    client, world, django_capture_on_commit_callbacks
):
    client.force_login(world.ana)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(world.ours.get_absolute_url(), FORM)
    job = FrontierJob.objects.get()
    assert response["Location"] == job.get_absolute_url()
    assert job.status == FrontierJob.Status.QUEUED and len(callbacks) == 1
    assert "Queued" in client.get(job.get_absolute_url()).content.decode()

    callbacks[0]()  # the broker-less default runs the task in-process
    job.refresh_from_db()
    assert job.status == FrontierJob.Status.DONE
    assert (job.num_stages, job.num_microbatches, job.unit_time_s, job.schedule, job.mode) == (
        4, 4, 0.001, FrontierJob.Schedule.ONE_F_ONE_B, FrontierJob.Mode.DEFAULT
    )
    assert 'data-plot="chart-frontier"' in client.get(job.get_absolute_url()).content.decode()


def test_the_stored_frontier_is_the_planners_own_bytes(gpt3_job):
    stored = perseus.Frontier.from_bytes(bytes(gpt3_job.frontier_data))
    profile = perseus.parse_profile(gpt3_job.profile.csv_text)
    direct = perseus.solve_frontier(profile, GPT3.problem(8))
    assert len(stored) == len(direct) == gpt3_job.num_points
    np.testing.assert_array_equal(stored.quant_times, direct.quant_times)
    np.testing.assert_allclose(stored.energy_j, direct.energy_j, rtol=1e-12)
    assert stored.frequencies(-1) == direct.frequencies(-1)
    assert len(gpt3_job.frontier_data) < 64_000  # 1,410 plans of 192 computations, as deltas
    times, energies = planning.read_realised(gpt3_job.realised_data)
    expected_times, expected_energies = perseus.realised_frontier(direct, profile)
    np.testing.assert_allclose(times, expected_times)
    np.testing.assert_allclose(energies, expected_energies)
    assert gpt3_job.summary["intrinsic"]["saving_fraction"] == pytest.approx(0.163, abs=0.001)


def test_the_same_request_is_not_solved_twice(client, world, monkeypatch, django_capture_on_commit_callbacks):
    calls = []
    real = planning.perseus.solve_frontier
    monkeypatch.setattr(planning.perseus, "solve_frontier", lambda *a, **k: calls.append(1) or real(*a, **k))
    client.force_login(world.ana)
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(world.ours.get_absolute_url(), FORM)
    assert FrontierJob.objects.count() == 1 and len(calls) == 1
    assert response["Location"] == FrontierJob.objects.get().get_absolute_url()


def test_other_parameters_make_another_frontier(world):
    planning.request_frontier(world.ours, SMALL)
    planning.request_frontier(world.ours, planning.Parameters(4, 0.001, 83.64, schedule=FrontierJob.Schedule.GPIPE))
    planning.request_frontier(world.ours, planning.Parameters(4, 0.001, 83.64, mode=FrontierJob.Mode.LOWTIME))
    planning.request_frontier(world.ours, planning.Parameters(4, 0.0005, 83.64))
    assert FrontierJob.objects.filter(profile=world.ours).count() == 4


def test_the_same_profile_in_another_project_reuses_the_stored_solve(world, monkeypatch):
    first = solve_now(world.ours)
    copy = profiles.store_upload(world.speech, world.ours.csv_text.encode(), name="same content").profile
    monkeypatch.setattr(planning.perseus, "solve_frontier", lambda *a, **k: pytest.fail("solved again"))
    second = solve_now(copy)
    assert second.copied_from_id == first.pk
    assert bytes(second.frontier_data) == bytes(first.frontier_data)


def test_progress_is_written_to_the_job_while_it_solves(world, monkeypatch):
    seen: list[tuple[str, int, int]] = []
    monkeypatch.setattr(
        "planner.perseus.planner.solve", lambda *a, **k: solve(*a, **{**k, "progress_interval_s": 0.0})
    )
    real_writer = planning._progress_writer

    def spying_writer(job_id):
        write = real_writer(job_id)

        def spy(done, total):
            write(done, total)
            job = FrontierJob.objects.get(pk=job_id)
            seen.append((job.status, job.progress_done, job.progress_total))

        return spy

    monkeypatch.setattr(planning, "_progress_writer", spying_writer)
    job = solve_now(world.ours)
    assert len(seen) > 10
    assert all(status == FrontierJob.Status.RUNNING for status, _, _ in seen)
    dones = [done for _, done, _ in seen]
    assert dones == sorted(dones) and dones[-1] == seen[-1][2] == job.progress_total > 0


def test_the_status_json_reports_progress(client, world):
    job, _ = planning.request_frontier(world.ours, SMALL)
    FrontierJob.objects.filter(pk=job.pk).update(status=FrontierJob.Status.RUNNING, progress_done=120, progress_total=480)
    client.force_login(world.ana)
    data = client.get(reverse("planner:frontier_status", args=[job.pk])).json()
    assert data == {"status": "running", "done": 120, "total": 480, "fraction": 0.25, "error": "", "points": None,
                    "url": job.get_absolute_url()}
    html = client.get(job.get_absolute_url()).content.decode()
    assert 'id="solve-progress"' in html and "120 of about 480 steps" in html


def test_a_failed_solve_shows_its_error_on_the_page(client, world, monkeypatch):
    monkeypatch.setattr(planning.perseus, "solve_frontier", _solve_capped)
    job, _ = planning.request_frontier(world.ours, SMALL)
    assert planning.solve_job(job.pk) == FrontierJob.Status.FAILED
    job.refresh_from_db()
    assert "the limit is 10" in job.error and job.frontier_data is None
    client.force_login(world.ana)
    html = client.get(job.get_absolute_url()).content.decode()
    assert "The frontier could not be computed." in html and "the limit is 10" in html


def _solve_capped(profile, problem, progress=None):
    from planner.perseus.planner import solve_frontier

    return solve_frontier(profile, problem, progress, max_points=10)


def test_an_unexpected_crash_is_also_shown_and_asking_again_retries(client, world, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(planning.perseus, "solve_frontier", crash)
    job, _ = planning.request_frontier(world.ours, SMALL)
    planning.solve_job(job.pk)
    job.refresh_from_db()
    assert job.status == FrontierJob.Status.FAILED and "RuntimeError: disk on fire" in job.error
    monkeypatch.undo()
    again, queued = planning.request_frontier(world.ours, SMALL)
    assert queued and again.pk == job.pk and again.status == FrontierJob.Status.QUEUED
    assert planning.solve_job(job.pk) == FrontierJob.Status.DONE


def test_a_repeated_delivery_of_a_solved_job_does_nothing(world, monkeypatch):
    job = solve_now(world.ours)
    monkeypatch.setattr(planning.perseus, "solve_frontier", lambda *a, **k: pytest.fail("solved again"))
    assert planning.solve_job(job.pk) == FrontierJob.Status.DONE
    assert planning.solve_job(10**9) == "gone"


def test_lowtime_mode_reproduces_the_artifacts_frontier(db):
    from tests.factories import member
    from tests.planner.perseus.perseus_helpers import expected_frontier

    member("ana", "vision")
    profile = profiles.store_sample(Project.objects.get(name="vision")).profile
    job = solve_now(profile, planning.Parameters(12, 0.001, 83.64, mode=FrontierJob.Mode.LOWTIME))
    frontier = perseus.Frontier.from_bytes(bytes(job.frontier_data))
    times, energies = zip(*expected_frontier(12), strict=True)
    np.testing.assert_allclose(frontier.time_s, times, rtol=0, atol=1e-9)
    np.testing.assert_allclose(frontier.energy_j, energies, rtol=1e-9)


def test_a_request_stuck_in_the_queue_is_sent_again_when_asked_again(client, world, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    job, queued = planning.request_frontier(world.ours, SMALL)
    assert queued
    assert planning.request_frontier(world.ours, SMALL) == (job, False)  # fresh: not sent twice
    FrontierJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(minutes=11))
    client.force_login(world.ana)
    assert "No news from this solve" in client.get(job.get_absolute_url()).content.decode()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again, queued = planning.request_frontier(world.ours, SMALL)
    assert queued and again.pk == job.pk and len(callbacks) == 1
    again.refresh_from_db()
    assert again.status == FrontierJob.Status.DONE

"""The API shows a caller their projects' data only: another project's objects answer 404, exactly like
objects that do not exist, and never appear in lists."""

from __future__ import annotations

import pytest

from dashboard.projects.models import Project
from dashboard.telemetry.models import RunGpu
from planner.plans import profiles
from tests.api_world import stream_run
from tests.planner.plans.conftest import small_csv, solve_now

pytestmark = pytest.mark.django_db


def run_paths(run_id: int, gpu_id: int) -> list[str]:
    return [
        f"/runs/{run_id}",
        f"/runs/{run_id}/gpus",
        f"/runs/{run_id}/gpus/{gpu_id}",
        f"/runs/{run_id}/gpus/{gpu_id}/samples",
        f"/runs/{run_id}/gpus/{gpu_id}/samples/buckets",
        f"/runs/{run_id}/carbon",
    ]


def test_another_projects_run_is_404_everywhere(api_world):
    theirs_gpu = RunGpu.objects.get(run=api_world.theirs)
    for path in run_paths(api_world.theirs.pk, theirs_gpu.pk):
        response = api_world.api.get(path)
        assert response.status_code == 404, path
        assert "whisper" not in response.content.decode()


def test_another_projects_run_answers_exactly_like_a_missing_one(api_world):
    theirs_gpu = RunGpu.objects.get(run=api_world.theirs)
    for theirs, missing in zip(run_paths(api_world.theirs.pk, theirs_gpu.pk), run_paths(999_999, 999_999), strict=True):
        assert api_world.api.get(theirs).json() == api_world.api.get(missing).json()


def test_a_gpu_of_another_run_is_404_under_your_run(api_world):
    theirs_gpu = RunGpu.objects.get(run=api_world.theirs)
    assert api_world.api.get(f"/runs/{api_world.ours.pk}/gpus/{theirs_gpu.pk}/samples").status_code == 404


def test_lists_never_include_another_projects_runs(api_world):
    assert [r["name"] for r in api_world.api.get("/runs").json()["items"]] == ["llama-7b"]
    assert [r["name"] for r in api_world.bob_api.get("/runs").json()["items"]] == ["whisper"]
    speech = Project.objects.get(name="speech")
    assert api_world.api.get("/runs", project_id=speech.pk).json() == {"items": [], "count": 0}


def test_another_projects_project_and_its_carbon_are_404(api_world):
    speech = Project.objects.get(name="speech")
    assert [p["name"] for p in api_world.api.get("/projects").json()] == ["vision"]
    for path in ("", "/carbon", "/carbon/offsets", "/carbon/preferences"):
        assert api_world.api.get(f"/projects/{speech.pk}{path}").status_code == 404, path


def test_another_projects_profiles_and_frontiers_are_404_and_unlisted(api_world):
    speech = Project.objects.get(name="speech")
    theirs = profiles.store_upload(speech, small_csv(), name="theirs").profile
    job = solve_now(theirs)
    assert api_world.api.get("/planner/profiles").json()["count"] == 0
    assert api_world.api.get("/planner/frontiers").json()["count"] == 0
    for path in (f"/planner/profiles/{theirs.pk}", f"/planner/frontiers/{job.pk}",
                 f"/planner/frontiers/{job.pk}/points", f"/planner/frontiers/{job.pk}/choice",
                 f"/planner/frontiers/{job.pk}/plans/0"):
        assert api_world.api.get(path).status_code == 404, path
    assert api_world.bob_api.get(f"/planner/frontiers/{job.pk}/plans/0").status_code == 200


def test_a_user_added_to_a_project_sees_it_at_once(api_world):
    stream_run("node-c", "speech", "whisper-large")
    Project.objects.get(name="speech").members.add(api_world.ana)
    names = {r["name"] for r in api_world.api.get("/runs").json()["items"]}
    assert names == {"llama-7b", "whisper", "whisper-large"}

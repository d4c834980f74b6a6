"""Asking for a frontier through the API (``POST /api/planner/profiles/{id}/frontiers``), as the loop's script
does with a token: validated as the profile page's form, solved in-process here (no broker), 400 for bad
parameters, 401 without a token, 404 for a profile outside the caller's projects, and nothing changed on error."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dashboard.projects.models import Project
from planner.plans import profiles
from planner.plans.models import FrontierJob, StageProfile
from tests.planner.plans.conftest import small_csv

pytestmark = pytest.mark.django_db


def post(api_world: Any, path: str, body: Any, *, token: str | None = "ana") -> Any:
    headers = {}
    if token == "ana":
        headers = {"Authorization": f"Bearer {api_world.api.token}"}
    elif token:
        headers = {"Authorization": f"Bearer {token}"}
    return api_world.api.client.post("/api" + path, json.dumps(body), content_type="application/json",
                                     headers=headers)


@pytest.fixture
def profile(api_world) -> StageProfile:
    return profiles.store_upload(Project.objects.get(name="vision"), small_csv(), name="small").profile


@pytest.fixture
def their_profile(api_world) -> StageProfile:
    return profiles.store_upload(Project.objects.get(name="speech"), small_csv(seed=1), name="theirs").profile


def test_a_member_asks_for_a_frontier_and_it_is_solved_in_process(api_world, profile,
                                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(api_world, f"/planner/profiles/{profile.pk}/frontiers",
                        {"num_microbatches": 4, "unit_time_ms": 1.0, "p_blocking_w": 83.64})
    assert response.status_code == 202, response.content
    frontier = response.json()
    job = FrontierJob.objects.get(pk=frontier["id"])
    assert (frontier["profile_id"], frontier["num_microbatches"], frontier["unit_time_s"]) == (profile.pk, 4, 0.001)
    assert job.requested_by == api_world.ana
    solved = api_world.api.get(f"/planner/frontiers/{job.pk}").json()
    assert solved["status"] == "done" and solved["summary"]["points"] == job.num_points > 1


def test_asking_again_answers_the_same_frontier_without_solving_it_twice(api_world, profile,
                                                                          django_capture_on_commit_callbacks):
    body = {"num_microbatches": 4, "p_blocking_w": 83.64, "schedule": "1f1b", "mode": "default"}
    with django_capture_on_commit_callbacks(execute=True):
        first = post(api_world, f"/planner/profiles/{profile.pk}/frontiers", body)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = post(api_world, f"/planner/profiles/{profile.pk}/frontiers", body)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["status"] == "done"
    assert callbacks == [] and FrontierJob.objects.count() == 1


def test_without_p_blocking_the_profiles_stated_value_is_used(api_world, profile, django_capture_on_commit_callbacks):
    StageProfile.objects.filter(pk=profile.pk).update(p_blocking_w=71.5)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(api_world, f"/planner/profiles/{profile.pk}/frontiers", {"num_microbatches": 4})
    assert response.status_code == 202 and response.json()["p_blocking_w"] == 71.5


@pytest.mark.parametrize(("body", "says"), [
    ({"num_microbatches": 0}, "num_microbatches"),
    ({"num_microbatches": 4, "unit_time_ms": -1}, "unit_time_ms"),
    ({"num_microbatches": 4, "p_blocking_w": -5}, "p_blocking_w"),
    ({"num_microbatches": 4, "schedule": "zigzag"}, "schedule"),
    ({"num_microbatches": 4, "mode": "fastest"}, "mode"),
    ({"unit_time_ms": 1.0}, "num_microbatches"),
    ({"num_microbatches": "many"}, "num_microbatches"),
])
def test_bad_parameters_are_a_400_naming_them_and_nothing_is_queued(api_world, profile, body, says):
    response = post(api_world, f"/planner/profiles/{profile.pk}/frontiers", body)
    assert response.status_code == 400, response.content
    assert says in response.json()["detail"]
    assert FrontierJob.objects.count() == 0


def test_a_body_that_is_not_json_is_a_400(api_world, profile):
    response = api_world.api.client.post(f"/api/planner/profiles/{profile.pk}/frontiers", "{not json",
                                         content_type="application/json",
                                         headers={"Authorization": f"Bearer {api_world.api.token}"})
    assert response.status_code == 400 and FrontierJob.objects.count() == 0


@pytest.mark.parametrize("token", [None, "ww_not-a-token"])
def test_without_a_valid_token_it_is_a_401(api_world, profile, token):
    response = post(api_world, f"/planner/profiles/{profile.pk}/frontiers", {"num_microbatches": 4}, token=token)
    assert response.status_code == 401 and "token" in response.json()["detail"].lower()
    assert FrontierJob.objects.count() == 0


def test_another_projects_profile_or_none_is_a_404(api_world, their_profile):
    for pk in (their_profile.pk, their_profile.pk + 1000):
        response = post(api_world, f"/planner/profiles/{pk}/frontiers", {"num_microbatches": 4})
        assert response.status_code == 404
    assert FrontierJob.objects.count() == 0

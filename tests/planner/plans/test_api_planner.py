"""The planner's objects through the API: profiles, frontiers, every point, the straggler choice and a
point's per-stage frequency plan, matching what the planner pages and downloads give."""

from __future__ import annotations

import json

import pytest

from dashboard.projects.models import Project
from planner.plans import planning, profiles, results
from planner.plans.models import FrontierJob
from tests.planner.plans.conftest import SMALL, small_csv, solve_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def solved(api_world) -> FrontierJob:
    profile = profiles.store_upload(Project.objects.get(name="vision"), small_csv(), name="small").profile
    return solve_now(profile, SMALL)


def test_profiles_list_and_detail_carry_the_stored_profile(api_world, solved):
    listed = api_world.api.get("/planner/profiles").json()
    assert listed["count"] == 1
    item = listed["items"][0]
    assert (item["name"], item["num_stages"], item["frontiers"], item["source"]) == ("small", 4, 1, "upload")
    assert "csv_text" not in item
    detail = api_world.api.get(f"/planner/profiles/{item['id']}").json()
    assert detail["csv_text"] == solved.profile.csv_text
    assert detail["frequencies_mhz"] == solved.profile.frequencies_mhz


def test_a_solved_frontier_lists_its_headline_figures(api_world, solved):
    listed = api_world.api.get("/planner/frontiers", status="done").json()
    assert [f["id"] for f in listed["items"]] == [solved.pk]
    frontier = api_world.api.get(f"/planner/frontiers/{solved.pk}").json()
    assert frontier["num_points"] == solved.num_points
    assert frontier["summary"]["intrinsic"]["saving_fraction"] == pytest.approx(
        solved.summary["intrinsic"]["saving_fraction"]
    )
    assert api_world.api.get("/planner/frontiers", status="queued").json()["count"] == 0


def test_points_page_through_the_whole_frontier_like_its_csv(api_world, solved):
    loaded = planning.load(FrontierJob.objects.get(pk=solved.pk))
    points, offset = [], 0
    while True:
        page = api_world.api.get(f"/planner/frontiers/{solved.pk}/points", limit=7, offset=offset).json()
        points += page["items"]
        offset += 7
        if offset >= page["count"]:
            break
    assert [p["index"] for p in points] == list(range(len(loaded.frontier)))
    assert [p["planned_time_s"] for p in points] == loaded.frontier.time_s.tolist()
    assert [p["realised_energy_j"] for p in points] == loaded.realised[1].tolist()


def test_a_plan_gives_every_stages_frequencies_as_the_plan_json_download(api_world, solved):
    loaded = planning.load(FrontierJob.objects.get(pk=solved.pk))
    k = len(loaded.frontier) - 1
    plan = api_world.api.get(f"/planner/frontiers/{solved.pk}/plans/{k}").json()
    download = json.loads(results.plan_json(loaded, results.plan_figures(loaded, k)))
    assert [
        {"rank": rank["rank"], "frequencies": [[s["instruction"], s["freq_mhz"]] for s in rank["steps"]]}
        for rank in plan["ranks"]
    ] == download["ranks"]
    assert plan["saving_fraction"] == pytest.approx(download["summary"]["saving_fraction"])
    assert plan["points"] == len(loaded.frontier) and plan["meets_straggler"] is True


def test_a_straggler_picks_the_plan_the_frontier_page_would(api_world, solved):
    loaded = planning.load(FrontierJob.objects.get(pk=solved.pk))
    slow = loaded.baseline.time_s * 1.2
    choice = api_world.api.get(f"/planner/frontiers/{solved.pk}/choice", straggler_time_s=slow).json()
    assert choice["point"] == results.choose(loaded, slow).index
    assert choice["straggler_time_s"] == pytest.approx(slow)
    plan = api_world.api.get(f"/planner/frontiers/{solved.pk}/plans/{choice['point']}", straggler_time_s=slow).json()
    assert plan["realised_energy_j"] == pytest.approx(choice["realised_energy_j"])


def test_a_frontier_not_solved_yet_is_a_409_and_a_point_past_its_end_a_404(api_world, solved):
    queued = FrontierJob.objects.create(
        profile=solved.profile, cache_key="x" * 64, num_stages=4, num_microbatches=8, unit_time_s=0.001,
        p_blocking_w=80.0,
    )
    for path in ("points", "choice", "plans/0"):
        response = api_world.api.get(f"/planner/frontiers/{queued.pk}/{path}")
        assert response.status_code == 409 and "not solved yet" in response.json()["detail"]
    assert api_world.api.get(f"/planner/frontiers/{queued.pk}").json()["summary"] is None
    response = api_world.api.get(f"/planner/frontiers/{solved.pk}/plans/{solved.num_points}")
    assert response.status_code == 404 and f"{solved.num_points} points" in response.json()["detail"]


def test_a_straggler_faster_than_running_at_full_speed_is_a_400(api_world, solved):
    loaded = planning.load(FrontierJob.objects.get(pk=solved.pk))
    response = api_world.api.get(f"/planner/frontiers/{solved.pk}/choice", straggler_time_s=loaded.baseline.time_s / 2)
    assert response.status_code == 400 and response.json()["detail"].startswith("straggler_time_s: ")

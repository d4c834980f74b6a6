"""Plans download as JSON (per rank, in the Zeus FrequencySchedule shape), CSV and a zip of all ranks;
frontiers as CSV and the compact archive. Every download is scoped to the user's projects."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.urls import reverse

from planner import perseus
from planner.plans import planning
from tests.planner.plans.conftest import solve_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(world):
    return solve_now(world.ours)


def test_a_ranks_json_is_the_frequency_schedule_shape(client, world, job):
    client.force_login(world.ana)
    fastest = job.num_points - 1
    response = client.get(reverse("planner:plan_rank", args=[job.pk, fastest, 2]))
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="small-ours-4x4-plan')
    data = json.loads(response.content)
    assert set(data) == {"rank", "frequencies"} and data["rank"] == 2
    assert len(data["frequencies"]) == 2 * 4
    assert all(isinstance(i, str) and isinstance(f, int) for i, f in data["frequencies"])
    plan = perseus.plan_at(planning.load(job).frontier, fastest)
    assert data == plan.rank_schedule(2)
    # 1F1B on stage 2 of 4: two warm-up forwards, then one backward, one forward, ...
    assert [i for i, _ in data["frequencies"]][:4] == ["forward", "forward", "backward", "forward"]


def test_the_zip_holds_every_rank_the_csv_and_the_summary(client, world, job):
    client.force_login(world.ana)
    response = client.get(reverse("planner:plan_zip", args=[job.pk, 3]))
    assert response["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    stem = "small-ours-4x4-plan3"
    assert sorted(names) == sorted([f"{stem}/rank-{r}.json" for r in range(4)] + [f"{stem}/plan.csv", f"{stem}/plan.json"])
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert json.loads(archive.read(f"{stem}/rank-0.json"))["rank"] == 0
    summary = json.loads(archive.read(f"{stem}/plan.json"))["summary"]
    assert summary["point"] == 3 and summary["problem"]["num_microbatches"] == 4


def test_plan_json_and_csv(client, world, job):
    client.force_login(world.ana)
    data = json.loads(client.get(reverse("planner:plan_json", args=[job.pk, 0]) + "?straggler=0.9").content)
    assert [r["rank"] for r in data["ranks"]] == [0, 1, 2, 3]
    assert data["summary"]["straggler_time_s"] == 0.9 and "saving_fraction" in data["summary"]
    csv_text = client.get(reverse("planner:plan_csv", args=[job.pk, 0])).content.decode()
    assert csv_text.splitlines()[0] == "stage,order,instruction,microbatch,freq_mhz"
    assert len(csv_text.splitlines()) == 1 + 4 * 4 * 2


def test_the_frontier_downloads(client, world, job):
    client.force_login(world.ana)
    csv_text = client.get(reverse("planner:frontier_csv", args=[job.pk])).content.decode()
    assert csv_text.splitlines()[0] == "time,energy" and len(csv_text.splitlines()) == job.num_points + 1
    realised = client.get(reverse("planner:frontier_realised_csv", args=[job.pk])).content.decode()
    assert realised.splitlines()[0] == "point,time,energy,realised_time,realised_energy"
    archive = client.get(reverse("planner:frontier_archive", args=[job.pk])).content
    assert len(perseus.Frontier.from_bytes(archive)) == job.num_points
    profile_csv = client.get(reverse("planner:profile_csv", args=[world.ours.pk])).content
    assert profile_csv.decode() == world.ours.csv_text


def urls(profile, job) -> list[str]:
    return [
        reverse("planner:profile", args=[profile.pk]),
        reverse("planner:profile_csv", args=[profile.pk]),
        reverse("planner:frontier", args=[job.pk]),
        reverse("planner:frontier_status", args=[job.pk]),
        reverse("planner:frontier_csv", args=[job.pk]),
        reverse("planner:frontier_realised_csv", args=[job.pk]),
        reverse("planner:frontier_archive", args=[job.pk]),
        reverse("planner:plan", args=[job.pk, 0]),
        reverse("planner:plan_rank", args=[job.pk, 0, 0]),
        reverse("planner:plan_json", args=[job.pk, 0]),
        reverse("planner:plan_csv", args=[job.pk, 0]),
        reverse("planner:plan_zip", args=[job.pk, 0]),
    ]


def test_every_page_and_download_of_another_project_is_not_found(client, world, job):
    theirs = solve_now(world.theirs)
    client.force_login(world.ana)
    for url in urls(world.ours, job):
        assert client.get(url).status_code == 200, url
    for url in urls(world.theirs, theirs):
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("planner:profile", args=[world.theirs.pk]), {}).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client, world, job):
    for url in [reverse("planner:index"), *urls(world.ours, job)]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url

"""Projects, runs and GPUs through the API: the runs list's filters, sorting and pages, and the run
page's figures."""

from __future__ import annotations

import pytest

from dashboard.projects.models import Project
from dashboard.runs.summaries import run_figures
from dashboard.telemetry.models import Run, RunGpu, RunTag
from tests.api_world import stream_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(api_world) -> list[Run]:
    """Three more runs in vision: two GPUs, one finished and tagged, one short."""
    big = stream_run("node-big", "vision", "big", gpus=2)
    done = stream_run("node-done", "vision", "done", batches=3)
    done.status = Run.Status.FINISHED
    done.save()
    RunTag.objects.create(run=done, name="sweep")
    short = stream_run("node-short", "vision", "short", batches=1)
    return [api_world.ours, big, done, short]


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [run["name"] for run in response.json()["items"]]


def test_projects_list_the_callers_projects_with_run_counts(api_world, runs):
    (project,) = api_world.api.get("/projects").json()
    assert (project["name"], project["runs"]) == ("vision", 4)
    assert api_world.api.get(f"/projects/{project['id']}").json()["runs"] == 4


def test_runs_filter_by_status_tag_and_project(api_world, runs):
    assert names(api_world.api.get("/runs", status="finished")) == ["done"]
    assert names(api_world.api.get("/runs", tag="sweep")) == ["done"]
    assert names(api_world.api.get("/runs", tag="nothing")) == []
    vision = Project.objects.get(name="vision")
    assert sorted(names(api_world.api.get("/runs", project_id=vision.pk))) == ["big", "done", "llama-7b", "short"]


def test_runs_sort_by_energy_either_way(api_world, runs):
    assert names(api_world.api.get("/runs", sort="-energy")) == ["big", "llama-7b", "done", "short"]
    assert names(api_world.api.get("/runs", sort="energy")) == ["short", "done", "llama-7b", "big"]


def test_an_unknown_sort_key_is_a_400_listing_the_choices(api_world):
    response = api_world.api.get("/runs", sort="colour")
    assert response.status_code == 400
    assert response.json()["errors"][0]["loc"] == ["query", "sort"]
    assert "energy" in response.json()["detail"]


def test_runs_come_in_pages_with_the_total_count(api_world, runs):
    first = api_world.api.get("/runs", sort="name", limit=3).json()
    second = api_world.api.get("/runs", sort="name", limit=3, offset=3).json()
    assert first["count"] == second["count"] == 4
    assert [r["name"] for r in first["items"] + second["items"]] == ["big", "done", "llama-7b", "short"]
    assert api_world.api.get("/runs", limit=501).status_code == 400


def test_run_detail_has_the_run_pages_figures(api_world, runs):
    big = runs[1]
    body = api_world.api.get(f"/runs/{big.pk}").json()
    figures = run_figures(big)
    assert body["energy_j"] == pytest.approx(figures.energy_j)
    assert body["duration_s"] == pytest.approx(figures.duration_s)
    assert body["mean_power_w"] == pytest.approx(figures.mean_power_w)
    assert body["gpu_hours"] == pytest.approx(figures.gpu_hours)
    assert (body["gpus"], body["samples"], body["peak_gpu_power_w"]) == (2, figures.samples, 300.0)
    assert body["nodes"] == [{"node": "node-big", "gpus": 2, "samples": figures.samples, "energy_j": figures.energy_j}]


def test_a_runs_gpus_carry_their_totals(api_world, runs):
    big = runs[1]
    gpus = api_world.api.get(f"/runs/{big.pk}/gpus").json()
    stored = list(RunGpu.objects.filter(run=big).select_related("gpu"))
    assert [(g["uuid"], g["index"], g["energy_j"]) for g in gpus] == [(rg.gpu.uuid, rg.gpu.index, rg.energy_j) for rg in stored]
    one = api_world.api.get(f"/runs/{big.pk}/gpus/{gpus[1]['id']}").json()
    assert one == gpus[1]


def test_ids_beyond_the_databases_range_are_a_400_not_an_error(api_world):
    assert api_world.api.get(f"/runs/{2**63}").status_code == 400
    assert api_world.api.get("/runs/0").status_code == 400
    assert api_world.api.get("/runs/abc").status_code == 400
    assert api_world.api.get(f"/runs/{2**63 - 1}").status_code == 404

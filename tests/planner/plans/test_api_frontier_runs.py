"""GET /api/planner/frontiers/{id}/runs: the runs that ran a frontier's plans, predicted against realised and
against their baseline runs, from markers stored through the real ingest path."""

from __future__ import annotations

import pytest

from dashboard.projects.models import Project
from planner.plans import profiles
from planner.plans.models import FrontierJob
from tests.factories import register
from tests.planner.plans.conftest import SMALL, small_csv, solve_now
from tests.planner.plans.loop_runs import iteration_events, plan_fields, store_run

pytestmark = pytest.mark.django_db

# Two ranks, 8 steps. Baseline: all-max. Planned: slower ranks, less energy.
BASE_TIMES = [[3.0, 2.0, 1.00, 1.02, 0.98, 1.00, 1.01, 0.99], [3.0, 2.0, 0.99, 1.03, 1.00, 0.97, 1.00, 1.00]]
BASE_ENERGY = [[500.0, 400.0, 120.0, 121.0, 119.0, 120.0, 122.0, 118.0], [500.0, 400.0, 80.0, 79.0, 81.0, 80.0, 80.0, 80.0]]
PLAN_TIMES = [[3.0, 2.0, 1.01, 1.00, 1.02, 1.00, 1.00, 1.01], [3.0, 2.0, 1.00, 1.02, 1.00, 1.01, 1.00, 1.00]]
PLAN_ENERGY = [[500.0, 400.0, 100.0, 98.0, 102.0, 100.0, 99.0, 101.0], [500.0, 400.0, 66.0, 67.0, 65.0, 66.0, 66.0, 66.0]]


def mean(values):
    return sum(values) / len(values)


def by_hand(times, energies):
    """The contract's figures, worked out without planner.plans.realised: steps 2..7 (warm-up 0, 1)."""
    steps = range(2, 8)
    time_s = mean([max(times[0][s], times[1][s]) for s in steps])
    energy_j = mean([energies[0][s] for s in steps]) + mean([energies[1][s] for s in steps])
    return time_s, energy_j


@pytest.fixture
def loop(api_world):
    vision = Project.objects.get(name="vision")
    job = solve_now(profiles.store_upload(vision, small_csv(), name="small").profile, SMALL)
    node = register("loop-node", "vision")
    plan = plan_fields(job.pk, 4, predicted_time_s=1.0, predicted_energy_j=170.0, baseline_time_s=0.99,
                       baseline_energy_j=200.0)
    baseline = store_run(node, "loop-baseline", iteration_events(BASE_TIMES, BASE_ENERGY))
    planned = store_run(node, "loop-planned", iteration_events(
        PLAN_TIMES, PLAN_ENERGY, plans={(0, 0): plan, (1, 0): plan}))
    return job, baseline, planned


def test_a_planned_run_shows_predicted_and_realised_figures_against_its_baseline_run(api_world, loop):
    job, baseline, planned = loop
    body = api_world.api.get(f"/planner/frontiers/{job.pk}/runs").json()
    assert body["count"] == 1
    [item] = body["items"]
    assert (item["run_id"], item["run_name"], item["point"], item["baseline_run_id"]) == (
        planned.pk, "loop-planned", 4, baseline.pk)
    assert item["straggler_time_s"] is None and item["reason"] == "start" and item["iterations"] == 6
    plan_t, plan_e = by_hand(PLAN_TIMES, PLAN_ENERGY)
    base_t, base_e = by_hand(BASE_TIMES, BASE_ENERGY)
    assert item["realised_time_s"] == pytest.approx(plan_t)
    assert item["realised_energy_j"] == pytest.approx(plan_e)
    assert item["baseline_time_s_measured"] == pytest.approx(base_t)
    assert item["baseline_energy_j_measured"] == pytest.approx(base_e)
    assert item["predicted_time_s"] == 1.0 and item["predicted_energy_j"] == 170.0
    assert item["predicted_saving_fraction"] == pytest.approx(0.15)
    assert item["realised_saving_fraction"] == pytest.approx(1 - plan_e / base_e)
    assert item["time_change_fraction"] == pytest.approx(plan_t / base_t - 1)
    # The figures themselves: 100 + 66 J against 120 + 80 J.
    assert item["realised_energy_j"] == pytest.approx(166.0)
    assert item["baseline_energy_j_measured"] == pytest.approx(200.0)


def test_a_run_whose_baseline_run_is_missing_has_no_realised_saving(api_world, loop):
    job, _, _ = loop
    plan = plan_fields(job.pk, 2, predicted_time_s=1.0, predicted_energy_j=180.0, baseline_time_s=0.99,
                       baseline_energy_j=200.0, baseline_run="never-ran")
    store_run(register("loop-node-2", "vision"), "loop-orphan",
              iteration_events(PLAN_TIMES, PLAN_ENERGY, plans={(0, 0): plan, (1, 0): plan}))
    items = {i["run_name"]: i for i in api_world.api.get(f"/planner/frontiers/{job.pk}/runs").json()["items"]}
    orphan = items["loop-orphan"]
    assert orphan["baseline_run_id"] is None and orphan["realised_saving_fraction"] is None
    assert orphan["time_change_fraction"] is None and orphan["realised_energy_j"] == pytest.approx(by_hand(PLAN_TIMES, PLAN_ENERGY)[1])
    assert orphan["predicted_saving_fraction"] == pytest.approx(0.1)


def test_without_a_token_it_is_a_401(api_world, loop, client):
    job, _, _ = loop
    response = client.get(f"/api/planner/frontiers/{job.pk}/runs")
    assert response.status_code == 401


def test_another_projects_frontier_and_an_unknown_one_are_404s(api_world, loop):
    job, _, _ = loop
    assert api_world.bob_api.get(f"/planner/frontiers/{job.pk}/runs").status_code == 404
    assert api_world.api.get(f"/planner/frontiers/{job.pk + 1000}/runs").status_code == 404


def test_runs_of_another_project_naming_the_frontier_are_not_listed(api_world, loop):
    job, _, _ = loop
    # Bob's run claims ana's frontier: ana must not see it, and bob cannot see the frontier.
    plan = plan_fields(job.pk, 1, predicted_time_s=1.0, predicted_energy_j=190.0, baseline_time_s=0.99,
                       baseline_energy_j=200.0)
    store_run(register("bob-node", "speech"), "bob-planned",
              iteration_events(PLAN_TIMES, PLAN_ENERGY, plans={(0, 0): plan, (1, 0): plan}))
    names = [i["run_name"] for i in api_world.api.get(f"/planner/frontiers/{job.pk}/runs").json()["items"]]
    assert names == ["loop-planned"]
    assert FrontierJob.objects.for_user(api_world.bob).filter(pk=job.pk).count() == 0

"""Issue 12's loop as a user reads it: a frontier, the all-max baseline run and a run of the frontier's
no-slowdown plan (their plan and iteration markers stored through ingest). The plan page shows predicted
against realised iteration time and energy and the savings; its compare link shows the baseline against the
planned run; the run page of a data-parallel run shows the power limit its optimiser chose."""

from __future__ import annotations

import re

import pytest

from dashboard.projects.models import Project
from planner.plans import profiles
from tests.e2e.browser import browser_page, open_logged_in, session_cookie, shot
from tests.factories import T0_MS, member, register
from tests.planner.plans.conftest import SMALL, small_csv, solve_now
from tests.planner.plans.loop_runs import iteration_events, plan_fields, store_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

STEPS = 12
NOISE = (1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.0, 1.01, 0.99, 1.0, 1.0)


def per_rank(ranks: int, time_s: float, energy_j: float) -> tuple[list[list[float]], list[list[float]]]:
    """Every rank's iteration: the pipeline's time (waiting included) and an equal share of its energy."""
    times = [[time_s * NOISE[s] for s in range(STEPS)] for _ in range(ranks)]
    energies = [[energy_j / ranks * NOISE[(s + r) % STEPS] for s in range(STEPS)] for r in range(ranks)]
    return times, energies


@pytest.fixture
def loop():
    member("ana", "vision")
    job = solve_now(profiles.store_upload(Project.objects.get(name="vision"), small_csv(), name="small").profile, SMALL)
    intrinsic = job.summary["intrinsic"]
    node = register("loop-node", "vision")
    ranks = job.num_stages
    store_run(node, "loop-baseline", iteration_events(*per_rank(ranks, intrinsic["baseline_time_s"],
                                                                intrinsic["baseline_energy_j"])))
    plan = plan_fields(job.pk, intrinsic["point"], predicted_time_s=intrinsic["realised_time_s"],
                       predicted_energy_j=intrinsic["realised_energy_j"], baseline_time_s=intrinsic["baseline_time_s"],
                       baseline_energy_j=intrinsic["baseline_energy_j"])
    # The planned run realises its prediction to within 1 %: a little more energy, the same time.
    store_run(node, "loop-planned", iteration_events(
        *per_rank(ranks, intrinsic["baseline_time_s"], intrinsic["realised_energy_j"] * 1.01),
        plans={(rank, 0): plan for rank in range(ranks)}))
    power = [{"t_ms": T0_MS + 100 * i, "kind": "power_limit", "phase": "trial", "limit_w": w, "dry_run": 0}
             for i, w in enumerate((300, 275, 250, 225, 200))]
    power.append({"t_ms": T0_MS + 600, "kind": "power_limit", "phase": "chosen", "limit_w": 250, "max_limit_w": 300,
                  "eta": 0.5, "energy_saving_pct": 11.8, "time_change_pct": 2.1, "dry_run": 0})
    store_run(register("dp-node", "vision"), "dp-power-limit", power)
    return job, intrinsic


def cells(page, selector: str) -> list[str]:
    return [re.sub(r"\s+", " ", t).strip() for t in page.locator(selector).all_inner_texts()]


def test_the_plan_and_compare_pages_show_the_realised_saving_against_the_baseline_run(live_server, loop):
    job, intrinsic = loop
    predicted = 1 - intrinsic["realised_energy_j"] / intrinsic["baseline_energy_j"]
    realised = 1 - 1.01 * intrinsic["realised_energy_j"] / intrinsic["baseline_energy_j"]
    cookie = session_cookie(live_server.url, "ana")
    with browser_page() as page:
        open_logged_in(page, live_server.url, cookie, f"/planner/frontiers/{job.pk}/plans/{intrinsic['point']}/")
        page.locator("#measured-in-runs").scroll_into_view_if_needed()
        row = page.locator('#measured-runs tr[data-run="loop-planned"]')
        assert "highlight" in (row.get_attribute("class") or "")
        assert row.locator('[data-figure="predicted-saving"]').inner_text() == f"{predicted * 100:.1f} %"
        assert row.locator('[data-figure="realised-saving"]').inner_text() == f"{realised * 100:.1f} %"
        assert row.locator('[data-figure="time-change"]').inner_text() == "±0.0 %"
        assert "loop-baseline" in row.inner_text()
        shot(page, "plan-measured-in-runs.png")

        row.locator("a.compare-link").click()
        page.wait_for_url("**/compare/?runs=*")
        assert "Compare 2 runs" in page.inner_text("h1")
        saving = cells(page, '#compare-table tr[data-row="realised_saving"] td')
        assert saving == ["—", f"{realised * 100:.1f} % against loop-baseline"]
        assert cells(page, '#compare-table tr[data-row="predicted_saving"] td')[1].startswith(f"{predicted * 100:.1f} %")
        energy = cells(page, '#compare-table tr[data-row="iteration_energy"] td')
        assert f"({-realised * 100:.1f} %)".replace("-", "−") in energy[1] and "better" in energy[1]
        page.locator('#compare-table tr[data-row="iteration_time"]').scroll_into_view_if_needed()
        shot(page, "compare-measured-saving.png")

        page.goto(live_server.url + "/runs/")
        page.click("text=dp-power-limit")
        page.wait_for_selector("#power-limit")
        assert cells(page, "#card-power-limit .value") == ["250 W"]
        assert cells(page, "#card-power-limit-saving .value") == ["11.8 % less"]
        assert cells(page, "#card-power-limit-time .value") == ["+2.1 %"]
        shot(page, "run-power-limit.png")
        assert not page.console_errors

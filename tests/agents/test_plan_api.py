"""Fetching a rank's plan from the app's planner API with an API token, against the real app."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.agents.plan_loop_support import solved_frontier
from tests.agents.support import free_port
from wattwise_agent.frequency_plan import parse_plans
from wattwise_agent.plan_api import PlanApi, PlanApiError

pytestmark = pytest.mark.app


@pytest.fixture
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_a_ranks_plan_is_the_planners_choice_with_its_prediction(live_server: Any, transactional_db: Any,
                                                                fast_passwords: None) -> None:
    from planner import perseus
    from planner.plans import planning, results

    planned, job = solved_frontier()
    fetched = PlanApi(live_server.url, planned.token).rank_plan(planned.frontier_id, 0)

    solved = planning.load(job)
    choice = results.choose(solved, None)
    assert (fetched.frontier_id, fetched.point, fetched.straggler_time_s) == (job.pk, choice.index, None)
    assert [fetched.plan] == parse_plans(perseus.plan_at(solved.frontier, choice.index).to_json())
    assert fetched.predicted_time_s == pytest.approx(choice.realised.time_s, rel=1e-12)
    assert fetched.predicted_energy_j == pytest.approx(choice.realised_energy_j, rel=1e-12)
    assert fetched.baseline_time_s == pytest.approx(solved.baseline.time_s, rel=1e-12)
    assert fetched.baseline_energy_j == pytest.approx(choice.baseline_energy_j, rel=1e-12)
    assert fetched.expected_iteration_s == fetched.predicted_time_s

    # A straggler 30 % slower than all-max: a slower, cheaper plan that still finishes within T′.
    straggler_s = 1.3 * fetched.baseline_time_s
    slower = PlanApi(live_server.url, planned.token).rank_plan(planned.frontier_id, 0, straggler_time_s=straggler_s)
    assert slower.straggler_time_s == straggler_s and slower.point < fetched.point
    assert fetched.predicted_time_s < slower.predicted_time_s <= straggler_s
    assert slower.expected_iteration_s == straggler_s
    assert slower.plan.frequencies_mhz[-1] < fetched.plan.frequencies_mhz[-1]


def test_a_bad_token_another_projects_frontier_and_a_missing_rank_are_clear_errors(
        live_server: Any, transactional_db: Any, fast_passwords: None) -> None:
    planned, _ = solved_frontier()
    with pytest.raises(PlanApiError) as refused:
        PlanApi(live_server.url, "ww_not-a-token").rank_plan(planned.frontier_id, 0)
    assert refused.value.status == 401 and "create_api_token" in str(refused.value)
    with pytest.raises(PlanApiError) as hidden:
        PlanApi(live_server.url, planned.other_token).rank_plan(planned.frontier_id, 0)
    assert hidden.value.status == 404 and "not in the token owner's projects" in str(hidden.value)
    with pytest.raises(PlanApiError, match="plans 1 pipeline stage") as no_rank:
        PlanApi(live_server.url, planned.token).rank_plan(planned.frontier_id, 3)
    assert no_rank.value.status == 404
    with pytest.raises(PlanApiError) as too_fast:  # a straggler cannot be faster than all-max
        PlanApi(live_server.url, planned.token).rank_plan(planned.frontier_id, 0, straggler_time_s=0.001)
    assert too_fast.value.status == 400 and "shorter than the all-maximum-frequency" in too_fast.value.detail
    with pytest.raises(ValueError, match="straggler_time_s"):
        PlanApi(live_server.url, planned.token).rank_plan(planned.frontier_id, 0, straggler_time_s=-1.0)


def test_a_frontier_not_solved_yet_is_waited_for_with_progress_then_fetched(
        live_server: Any, transactional_db: Any, fast_passwords: None, caplog: pytest.LogCaptureFixture) -> None:
    from planner.plans import planning

    planned, job = solved_frontier(solve=False)
    with pytest.raises(PlanApiError) as unsolved:
        PlanApi(live_server.url, planned.token, wait_s=0).rank_plan(planned.frontier_id, 0)
    assert unsolved.value.status == 409 and "not solved yet" in unsolved.value.detail

    naps: list[float] = []

    def solve_while_asleep(seconds: float) -> None:  # the worker solves it while the agent waits
        naps.append(seconds)
        planning.solve_job(job.pk)

    api = PlanApi(live_server.url, planned.token, poll_s=3.0, sleep=solve_while_asleep)
    with caplog.at_level(logging.INFO, logger="wattwise_agent.plan_api"):
        fetched = api.rank_plan(planned.frontier_id, 0)
    assert naps == [3.0] and fetched.frontier_id == job.pk
    assert f"frontier {job.pk} is queued (0 of 0 solved); asking again in 3 s" in caplog.text


def test_an_app_that_cannot_be_reached_is_an_error_without_a_status() -> None:
    with pytest.raises(PlanApiError) as unreachable:
        PlanApi(f"http://127.0.0.1:{free_port()}", "ww_token", timeout_s=2).rank_plan(1, 0)
    assert unreachable.value.status is None and "cannot reach the app" in str(unreachable.value)
    with pytest.raises(ValueError, match="not an http"):
        PlanApi("ftp://example.org", "ww_token")

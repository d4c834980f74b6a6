"""Plans as per-rank JSON and CSV, and compact frontier storage."""

from __future__ import annotations

import json

import pytest

from planner.perseus import (
    Frontier,
    FrontierFormatError,
    Mode,
    PlannerError,
    PlanningProblem,
    Profile,
    plan_at,
    solve_frontier,
)


@pytest.fixture(scope="module")
def frontier(gpt3_profile: Profile) -> Frontier:
    return solve_frontier(gpt3_profile, PlanningProblem(8, 12, 0.001, 83.64))


def test_rank_schedule_has_the_zeus_frequency_schedule_shape(frontier: Frontier) -> None:
    plan = plan_at(frontier, -1)
    ranks = plan.rank_schedules()
    assert [r["rank"] for r in ranks] == list(range(8))
    rank0 = ranks[0]
    assert set(rank0) == {"rank", "frequencies"}
    assert len(rank0["frequencies"]) == 2 * 12
    # 1F1B on stage 0 of 8: eight warm-up forwards, then backward/forward alternating.
    assert [inst for inst, _ in rank0["frequencies"][:10]] == ["forward"] * 8 + ["backward", "forward"]
    assert all(isinstance(f, int) and 855 <= f <= 1410 for _, f in rank0["frequencies"])
    json.dumps(ranks)  # plain JSON


def test_plan_frequencies_follow_the_planned_durations(frontier: Frontier) -> None:
    k = len(frontier) // 3
    plan = plan_at(frontier, k)
    durations = frontier.durations(k)
    dag = frontier.dag
    for stage, ops in enumerate(dag.stage_ops):
        for step, op in zip(plan.stages[stage], ops, strict=True):
            opts = frontier.options[(stage, step.instruction)]
            assert step.freq_mhz == opts.freq_mhz[opts.option_for(int(durations[op]))]
            assert opts.quant_time[opts.option_for(int(durations[op]))] <= durations[op]


def test_slowest_point_runs_everything_at_its_cheapest_option(frontier: Frontier) -> None:
    plan = plan_at(frontier, 0)
    for stage, steps in enumerate(plan.stages):
        for step in steps:
            assert step.freq_mhz == frontier.options[(stage, step.instruction)].freq_mhz[0]


def test_plan_csv_has_one_row_per_computation(frontier: Frontier) -> None:
    lines = plan_at(frontier, 5).to_csv().splitlines()
    assert lines[0] == "stage,order,instruction,microbatch,freq_mhz"
    assert len(lines) == 1 + 2 * 8 * 12
    assert lines[1].startswith("0,0,forward,0,")


def test_frontier_survives_a_bytes_round_trip(frontier: Frontier) -> None:
    data = frontier.to_bytes()
    again = Frontier.from_bytes(data)
    assert again.problem == frontier.problem
    assert (again.time_s == frontier.time_s).all()
    assert (again.energy_j == frontier.energy_j).all()
    for k in (0, 100, len(frontier) - 1):
        assert again.frequencies(k) == frontier.frequencies(k)
    # Compact: a few bytes per point, not a full plan per point.
    assert len(data) < 40 * len(frontier) + 20_000


def test_garbage_is_not_a_frontier() -> None:
    with pytest.raises(FrontierFormatError):
        Frontier.from_bytes(b"not an npz")


def test_point_out_of_range_is_a_clear_error(frontier: Frontier) -> None:
    with pytest.raises(PlannerError, match="does not exist"):
        frontier.durations(len(frontier))


def test_default_and_lowtime_frontiers_are_stored_alike(gpt3_profile: Profile) -> None:
    lowtime = solve_frontier(gpt3_profile, PlanningProblem(8, 4, 0.001, 83.64, mode=Mode.LOWTIME))
    again = Frontier.from_bytes(lowtime.to_bytes())
    assert again.problem.mode is Mode.LOWTIME
    assert again.to_csv() == lowtime.to_csv()

"""Properties of the Phillips–Dessouky solver on small random pipelines and profiles."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from planner.perseus import (
    Mode,
    PlannerError,
    PlanningProblem,
    Schedule,
    parse_profile,
    realised_frontier,
    solve_frontier,
)
from planner.perseus.dag import build_dag
from planner.perseus.solver import DEFAULT_INF_UNITS, DurationTable, SolverSettings, solve
from planner.perseus.synthetic import GpuShape, synthetic_profile_csv
from tests.planner.perseus.perseus_helpers import longest_path

EXACT = SolverSettings(inf_units=DEFAULT_INF_UNITS, stop_on_flat_step=False, report_start=True)


@st.composite
def convex_table(draw: st.DrawFn) -> DurationTable:
    """Integer durations lo..hi with a convex, decreasing integer cost."""
    lo = draw(st.integers(1, 4))
    hi = lo + draw(st.integers(0, 2))
    marginals = sorted(draw(st.lists(st.integers(0, 30), min_size=hi - lo, max_size=hi - lo)), reverse=True)
    base = draw(st.integers(0, 50))
    costs = [0] * (hi - lo + 1)
    costs[-1] = base
    for k in range(hi - lo - 1, -1, -1):
        costs[k] = costs[k + 1] + marginals[k]
    lbs = [marginals[k] if k < hi - lo else 0 for k in range(hi - lo + 1)]
    ubs = [marginals[k - 1] if k > 0 else DEFAULT_INF_UNITS for k in range(hi - lo + 1)]
    return DurationTable(lo, hi, tuple(float(c) for c in costs), tuple(lbs), tuple(ubs))


@st.composite
def tiny_problems(draw: st.DrawFn) -> tuple[Schedule, int, int, list[DurationTable]]:
    schedule = draw(st.sampled_from(list(Schedule)))
    stages = draw(st.integers(1, 3))
    microbatches = draw(st.integers(1, 4 // stages))
    tables = [draw(convex_table()) for _ in range(2 * stages * microbatches)]
    return schedule, stages, microbatches, tables


@settings(max_examples=60, deadline=None)
@given(tiny_problems())
def test_solver_matches_brute_force_over_all_plans_in_the_relaxed_model(
    problem: tuple[Schedule, int, int, list[DurationTable]],
) -> None:
    schedule, stages, microbatches, tables = problem
    dag = build_dag(schedule, stages, microbatches)
    n = dag.num_computations
    # Every computation gets its own table, so all durations vary independently.
    trace = solve(dag, list(range(n)), tables, EXACT)

    best: dict[int, float] = {}
    ranges = [range(t.lo, t.hi + 1) for t in tables]
    for durations in itertools.product(*ranges):
        length = int(longest_path(dag, durations))
        cost = sum(tables[i].cost_j[d - tables[i].lo] for i, d in enumerate(durations))
        best[length] = min(best.get(length, cost), cost)
    # Cheapest plan with iteration time at most T.
    cheapest: dict[int, float] = {}
    running = float("inf")
    for length in range(min(best), max(best) + 1):
        running = min(running, best.get(length, float("inf")))
        cheapest[length] = running

    assert trace.quant_times[0] == max(best)
    assert trace.quant_times[-1] == min(best)
    for time, cost in zip(trace.quant_times, trace.costs_j, strict=True):
        assert cost == pytest.approx(cheapest[time], abs=1e-9)


@st.composite
def small_profiles(draw: st.DrawFn) -> tuple[str, int, int, float, Schedule]:
    stages = draw(st.integers(1, 3))
    microbatches = draw(st.integers(1, 4))
    shape = GpuShape(
        f_max_mhz=1410,
        f_min_mhz=draw(st.sampled_from([855, 1005, 1200])),
        step_mhz=draw(st.sampled_from([15, 45, 90])),
        forward_time_s=draw(st.floats(0.01, 0.1)),
        backward_ratio=draw(st.floats(1.5, 3.0)),
        alpha_forward=draw(st.floats(0.4, 0.9)),
        alpha_backward=draw(st.floats(0.4, 0.9)),
        p_static_w=draw(st.floats(50, 120)),
        p_dynamic_w=draw(st.floats(150, 400)),
        power_exponent=draw(st.floats(1.5, 3.0)),
    )
    csv_text = synthetic_profile_csv(
        stages, shape, noise=draw(st.sampled_from([0.0, 0.003])), seed=draw(st.integers(0, 1000))
    )
    unit = draw(st.sampled_from([0.001, 0.002, 0.004]))
    return csv_text, stages, microbatches, unit, draw(st.sampled_from(list(Schedule)))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_profiles(), st.sampled_from(list(Mode)))
def test_every_frontier_plan_meets_its_time_and_the_fastest_is_the_all_max_time(
    case: tuple[str, int, int, float, Schedule], mode: Mode
) -> None:
    csv_text, stages, microbatches, unit, schedule = case
    profile = parse_profile(csv_text)
    problem = PlanningProblem(stages, microbatches, unit, 80.0, schedule=schedule, mode=mode)
    try:
        frontier = solve_frontier(profile, problem)
    except PlannerError as e:  # lowtime's exponential fit can fail on very few options
        assume("does not fit" not in str(e))
        raise
    assert len(frontier) >= 1
    dag = frontier.dag
    step = max(1, len(frontier) // 150)
    for k in [*range(0, len(frontier), step), len(frontier) - 1]:
        durations = frontier.durations(k)
        assert longest_path(dag, [float(d) for d in durations]) == frontier.quant_times[k]
        for comp, d in zip(dag.computations, durations, strict=True):
            opts = frontier.options[(comp.stage, comp.instruction)]
            assert opts.min_duration <= d <= opts.max_duration
    # Each step shortens the iteration by exactly one unit.
    assert all(a - b == 1 for a, b in zip(frontier.quant_times, frontier.quant_times[1:], strict=False))
    # The fastest point is as fast as running every computation at the maximum frequency
    # (its fastest option; without noise that is the highest frequency).
    fastest = [
        float(frontier.options[(c.stage, c.instruction)].min_duration) for c in dag.computations
    ]
    assert frontier.quant_times[-1] == longest_path(dag, fastest)
    if mode is Mode.DEFAULT:
        slowest = [float(frontier.options[(c.stage, c.instruction)].max_duration) for c in dag.computations]
        assert frontier.quant_times[0] == longest_path(dag, slowest)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_profiles())
def test_default_mode_plans_never_run_longer_than_planned(case: tuple[str, int, int, float, Schedule]) -> None:
    csv_text, stages, microbatches, unit, schedule = case
    profile = parse_profile(csv_text)
    frontier = solve_frontier(profile, PlanningProblem(stages, microbatches, unit, 80.0, schedule=schedule))
    times, _ = realised_frontier(frontier, profile)
    assert (times <= frontier.time_s + 1e-12).all()

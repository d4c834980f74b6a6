"""Plan a pipeline: from a profile to the whole iteration time–energy frontier.

This is the entry point the CLI and the Django app call::

    profile = parse_profile(csv_bytes)
    problem = PlanningProblem(num_stages=8, num_microbatches=12, unit_time_s=0.001, p_blocking_w=83.64)
    frontier = solve_frontier(profile, problem, progress=lambda done, total: ...)

Steps: clean every (stage, instruction)'s options (:mod:`~planner.perseus.options`), fit a
cost model to each (:mod:`~planner.perseus.cost_model`), tabulate the marginal costs
(:mod:`~planner.perseus.bounds`), build the DAG (:mod:`~planner.perseus.dag`) and run the
Phillips–Dessouky solver (:mod:`~planner.perseus.solver`).
"""

from __future__ import annotations

import math

from planner.perseus.bounds import hull_table, lowtime_table
from planner.perseus.cost_model import ConvexHullCostModel, ExponentialCostModel
from planner.perseus.dag import build_dag
from planner.perseus.errors import PlannerError, ProblemTooLargeError
from planner.perseus.frontier import Frontier, PlanningProblem
from planner.perseus.options import CandidateOptions, Mode, clean_options
from planner.perseus.profile import INSTRUCTIONS, Profile
from planner.perseus.solver import (
    DEFAULT_INF_UNITS,
    LOWTIME_FP_ERROR,
    LOWTIME_INF,
    DurationTable,
    ProgressCallback,
    SolverSettings,
    solve,
)

MAX_FRONTIER_POINTS = 2_000_000
"""Largest number of solver steps accepted (T_max − T_min in units of τ)."""

MAX_DURATION_UNITS = 10_000_000
"""Largest duration of one computation in units of τ (guards against a tiny τ)."""


def validate_problem(profile: Profile, problem: PlanningProblem) -> None:
    """Check the problem's numbers and that it matches the profile."""
    if problem.num_stages < 1:
        raise PlannerError(f"the number of stages must be at least 1, got {problem.num_stages}")
    if problem.num_microbatches < 1:
        raise PlannerError(f"the number of microbatches must be at least 1, got {problem.num_microbatches}")
    if not (math.isfinite(problem.unit_time_s) and problem.unit_time_s > 0):
        raise PlannerError(f"the unit time must be a positive number of seconds, got {problem.unit_time_s}")
    if not (math.isfinite(problem.p_blocking_w) and problem.p_blocking_w >= 0):
        raise PlannerError(f"P_blocking must be a non-negative number of watts, got {problem.p_blocking_w}")
    if profile.num_stages != problem.num_stages:
        raise PlannerError(
            f"the profile has {profile.num_stages} stage(s) but {problem.num_stages} were requested"
        )
    longest = max(max(e.time_s) for e in profile.entries.values())
    if longest / problem.unit_time_s > MAX_DURATION_UNITS:
        raise ProblemTooLargeError(
            f"a computation of {longest:.6g} s is {longest / problem.unit_time_s:.3g} units of "
            f"{problem.unit_time_s} s; the limit is {MAX_DURATION_UNITS} — use a larger unit time"
        )


def prepare(
    profile: Profile, problem: PlanningProblem
) -> tuple[dict[tuple[int, str], CandidateOptions], dict[tuple[int, str], DurationTable]]:
    """Clean options and tabulate marginal costs for every (stage, instruction)."""
    validate_problem(profile, problem)
    options: dict[tuple[int, str], CandidateOptions] = {}
    tables: dict[tuple[int, str], DurationTable] = {}
    for instruction in INSTRUCTIONS:
        for stage in range(problem.num_stages):
            key = (stage, instruction)
            opts = clean_options(profile.get(stage, instruction), problem.unit_time_s, problem.p_blocking_w, problem.mode)
            options[key] = opts
            if problem.mode is Mode.LOWTIME:
                tables[key] = lowtime_table(opts, ExponentialCostModel.fit(opts))
            else:
                tables[key] = hull_table(opts, ConvexHullCostModel.fit(opts))
    return options, tables


def solve_frontier(
    profile: Profile,
    problem: PlanningProblem,
    progress: ProgressCallback | None = None,
    *,
    max_points: int = MAX_FRONTIER_POINTS,
) -> Frontier:
    """Compute the iteration time–energy frontier of ``problem`` from ``profile``.

    Args:
        profile: A validated profile (:func:`~planner.perseus.profile.parse_profile`).
        problem: Pipeline shape, τ, P_blocking, schedule and mode.
        progress: Optional ``progress(done, total_estimate)`` callback, called about twice a second
            (a Celery task can forward it with ``update_state``). Raising from it aborts the solve.
        max_points: Refuse problems whose frontier would have more points than this.

    Raises:
        PlannerError: The problem does not fit the profile or cannot be planned.
        ProblemTooLargeError: The frontier would be larger than ``max_points``.
    """
    options, tables = prepare(profile, problem)
    dag = build_dag(problem.schedule, problem.num_stages, problem.num_microbatches)
    keys = list(tables)
    table_index = {key: i for i, key in enumerate(keys)}
    op_tables = [table_index[(c.stage, c.instruction)] for c in dag.computations]
    if problem.mode is Mode.LOWTIME:
        settings = SolverSettings(
            inf_units=int(LOWTIME_INF // LOWTIME_FP_ERROR), stop_on_flat_step=True, report_start=False
        )
    else:
        settings = SolverSettings(inf_units=DEFAULT_INF_UNITS, stop_on_flat_step=False, report_start=True)
    trace = solve(dag, op_tables, [tables[k] for k in keys], settings, progress, max_steps=max_points)
    return Frontier(
        problem,
        options,
        trace.quant_times,
        trace.costs_j,
        trace.start_durations,
        trace.delta_ptr,
        trace.delta_ops,
        trace.delta_signs,
        min_quant_time=trace.min_quant_time,
        max_quant_time=trace.max_quant_time,
        stop_reason=trace.stop_reason,
        solve_time_s=trace.elapsed_s,
        profile_digest=profile.digest(),
    )

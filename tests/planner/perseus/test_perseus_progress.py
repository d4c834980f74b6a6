"""Solving reports progress through a plain callback and can be aborted from it."""

from __future__ import annotations

import pytest

from planner.perseus import PlanningProblem, Profile, solve_frontier
from planner.perseus.planner import MAX_FRONTIER_POINTS
from planner.perseus.solver import solve


def test_progress_callback_ends_with_done_equal_to_total(gpt3_profile: Profile) -> None:
    calls: list[tuple[int, int]] = []
    frontier = solve_frontier(
        gpt3_profile, PlanningProblem(8, 12, 0.001, 83.64), progress=lambda done, total: calls.append((done, total))
    )
    assert calls, "progress was never reported"
    done, total = calls[-1]
    assert done == total == frontier.max_quant_time - frontier.min_quant_time


def test_raising_from_the_progress_callback_aborts_the_solve(gpt3_profile: Profile, monkeypatch: pytest.MonkeyPatch) -> None:
    class Cancelled(Exception):
        pass

    def cancel(done: int, total: int) -> None:
        raise Cancelled

    # Report on every step so the callback runs before the solve finishes.
    monkeypatch.setattr(
        "planner.perseus.planner.solve",
        lambda *args, **kwargs: solve(*args, **{**kwargs, "progress_interval_s": 0.0}),
    )
    with pytest.raises(Cancelled):
        solve_frontier(gpt3_profile, PlanningProblem(8, 12, 0.001, 83.64), progress=cancel)


def test_frontier_larger_than_the_limit_is_refused_before_solving(gpt3_profile: Profile) -> None:
    from planner.perseus import ProblemTooLargeError

    with pytest.raises(ProblemTooLargeError, match="points"):
        solve_frontier(gpt3_profile, PlanningProblem(8, 12, 0.001, 83.64), max_points=100)
    assert MAX_FRONTIER_POINTS >= 100_000

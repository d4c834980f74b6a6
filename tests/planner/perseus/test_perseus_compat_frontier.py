"""The lowtime compatibility mode reproduces the Perseus artifact's frontiers point for point."""

from __future__ import annotations

import pytest

from planner.perseus import Mode, PlanningProblem, Profile, solve_frontier
from tests.planner.perseus.perseus_helpers import expected_frontier


@pytest.mark.parametrize("microbatches", [12, 24])
def test_compat_mode_reproduces_gpt3_frontier(gpt3_profile: Profile, microbatches: int) -> None:
    problem = PlanningProblem(8, microbatches, unit_time_s=0.001, p_blocking_w=83.64, mode=Mode.LOWTIME)
    frontier = solve_frontier(gpt3_profile, problem)
    expected = expected_frontier(microbatches)

    assert len(frontier) == len(expected)
    for k, ((t_ref, e_ref), t, e) in enumerate(zip(expected, frontier.time_s, frontier.energy_j, strict=True)):
        assert t == pytest.approx(t_ref, abs=1e-12), f"point {k}"
        assert e == pytest.approx(e_ref, rel=1e-6), f"point {k}"


def test_compat_frontier_csv_has_the_reference_shape(gpt3_profile: Profile) -> None:
    problem = PlanningProblem(8, 12, unit_time_s=0.001, p_blocking_w=83.64, mode=Mode.LOWTIME)
    text = solve_frontier(gpt3_profile, problem).to_csv()
    lines = text.splitlines()
    assert lines[0] == "time,energy"
    assert lines[1].startswith("3.456,")
    assert lines[-1].startswith("2.818,")
    assert len(lines) == 1 + len(expected_frontier(12))

"""Straggler-aware plan choice."""

from __future__ import annotations

import numpy as np
import pytest

from planner.perseus import (
    Frontier,
    Mode,
    PlanningProblem,
    Profile,
    StragglerError,
    choose_for_straggler,
    evaluate_all_max,
    realised_frontier,
    solve_frontier,
)


@pytest.fixture(scope="module", params=[Mode.DEFAULT, Mode.LOWTIME], ids=["default", "lowtime"])
def frontier(request: pytest.FixtureRequest, gpt3_profile: Profile) -> Frontier:
    return solve_frontier(gpt3_profile, PlanningProblem(8, 12, 0.001, 83.64, mode=request.param))


@pytest.mark.parametrize("slowdown", [1.05, 1.1, 1.2, 1.5])
def test_straggler_choice_is_the_cheapest_plan_that_finishes_in_time(
    gpt3_profile: Profile, frontier: Frontier, slowdown: float
) -> None:
    base = evaluate_all_max(gpt3_profile, frontier.dag, 83.64)
    t_prime = base.time_s * slowdown
    choice = choose_for_straggler(frontier, gpt3_profile, t_prime)
    assert choice.meets_time
    assert choice.realised.time_s <= t_prime
    times, energies = realised_frontier(frontier, gpt3_profile)
    ok = times <= t_prime
    at_t_prime = energies[ok] + 83.64 * 8 * (t_prime - times[ok])
    assert choice.realised_energy_j == pytest.approx(at_t_prime.min())
    # The baseline blocks until T′ too.
    assert choice.baseline_energy_j == pytest.approx(base.energy_j + 83.64 * 8 * (t_prime - base.time_s))
    assert 0.15 < choice.saving_fraction < 0.35
    assert choice.saving_j == pytest.approx(choice.baseline_energy_j - choice.realised_energy_j)


def test_savings_grow_with_moderate_straggler_slowdown(gpt3_profile: Profile, frontier: Frontier) -> None:
    base = evaluate_all_max(gpt3_profile, frontier.dag, 83.64)
    savings = [choose_for_straggler(frontier, gpt3_profile, base.time_s * s).saving_fraction for s in (1.02, 1.1, 1.2)]
    assert savings == sorted(savings)


def test_without_a_straggler_the_fastest_plans_are_considered(gpt3_profile: Profile, frontier: Frontier) -> None:
    choice = choose_for_straggler(frontier, gpt3_profile)
    times, _ = realised_frontier(frontier, gpt3_profile)
    assert choice.realised.time_s <= np.sort(times)[5] + 1e-12
    assert choice.saving_fraction > 0.14


def test_planned_basis_uses_the_model_figures(gpt3_profile: Profile, frontier: Frontier) -> None:
    t_prime = float(frontier.time_s[len(frontier) // 2])
    choice = choose_for_straggler(frontier, gpt3_profile, t_prime, basis="planned")
    eligible = frontier.time_s <= t_prime
    assert frontier.costs_j[choice.index] == pytest.approx(frontier.costs_j[eligible].min())
    assert choice.planned_time_s <= t_prime


def test_straggler_faster_than_all_max_is_rejected(gpt3_profile: Profile, frontier: Frontier) -> None:
    base = evaluate_all_max(gpt3_profile, frontier.dag, 83.64)
    with pytest.raises(StragglerError, match="shorter than the all-maximum-frequency"):
        choose_for_straggler(frontier, gpt3_profile, base.time_s * 0.9)


def test_summary_is_json_ready(gpt3_profile: Profile, frontier: Frontier) -> None:
    summary = choose_for_straggler(frontier, gpt3_profile, 3.2).summary()
    assert set(summary) >= {"point", "realised_energy_j", "baseline_energy_j", "saving_fraction", "meets_time"}
    assert all(isinstance(v, int | float | bool) for v in summary.values())

"""Discrete re-evaluation of plans and per-stage timelines."""

from __future__ import annotations

import numpy as np
import pytest

from planner.perseus import (
    Frontier,
    Mode,
    PlanningProblem,
    Profile,
    evaluate_all_max,
    evaluate_frequencies,
    evaluate_point,
    parse_profile,
    realised_frontier,
    solve_frontier,
    timeline,
)
from planner.perseus.dag import build_dag

TWO_STAGES = parse_profile(
    """stage,instruction,frequency,time,energy
0,forward,1400,1.0,100.0
0,backward,1400,2.0,200.0
0,forward,1000,1.5,80.0
0,backward,1000,3.0,170.0
1,forward,1400,1.0,100.0
1,backward,1400,2.0,200.0
1,forward,1000,1.5,80.0
1,backward,1000,3.0,170.0
"""
)


def test_evaluation_charges_blocking_for_idle_gpu_time() -> None:
    dag = build_dag("1f1b", 2, 1)
    # Stage 0 waits for stage 1's forward and backward: T = F0 + F1 + B1 + B0 = 6 s.
    result = evaluate_all_max(TWO_STAGES, dag, p_blocking_w=10.0)
    assert result.time_s == pytest.approx(6.0)
    assert result.compute_energy_j == pytest.approx(600.0)
    assert result.busy_time_s == pytest.approx(6.0)
    # 2 GPUs × 6 s = 12 GPU-seconds, 6 of them computing: 6 s × 10 W of blocking.
    assert result.energy_j == pytest.approx(660.0)
    assert result.energy_at(8.0) == pytest.approx(600.0 + 10.0 * (16.0 - 6.0))


def test_evaluation_uses_the_profiled_time_at_each_frequency() -> None:
    dag = build_dag("1f1b", 2, 1)
    freqs = [1400] * dag.num_computations
    slow_b1 = next(i for i, c in enumerate(dag.computations) if (c.stage, c.instruction) == (1, "backward"))
    freqs[slow_b1] = 1000
    result = evaluate_frequencies(TWO_STAGES, dag, freqs, p_blocking_w=0.0)
    assert result.time_s == pytest.approx(7.0)
    assert result.compute_energy_j == pytest.approx(570.0)


@pytest.fixture(scope="module")
def gpt3_frontier(gpt3_profile: Profile) -> Frontier:
    return solve_frontier(gpt3_profile, PlanningProblem(8, 12, 0.001, 83.64, mode=Mode.LOWTIME))


def test_vectorised_realised_frontier_matches_point_by_point_evaluation(gpt3_profile: Profile, gpt3_frontier: Frontier) -> None:
    times, energies = realised_frontier(gpt3_frontier, gpt3_profile, batch=100)
    for k in [0, 1, 99, 100, 101, 333, len(gpt3_frontier) - 1]:
        single = evaluate_point(gpt3_frontier, gpt3_profile, k)
        assert times[k] == pytest.approx(single.time_s, rel=1e-12)
        assert energies[k] == pytest.approx(single.energy_j, rel=1e-12)


def test_planned_and_realised_figures_agree_to_about_one_percent(gpt3_profile: Profile, gpt3_frontier: Frontier) -> None:
    times, energies = realised_frontier(gpt3_frontier, gpt3_profile)
    assert np.abs(times / gpt3_frontier.time_s - 1).max() < 0.015
    assert np.abs(energies / gpt3_frontier.energy_j - 1).max() < 0.015


def test_fastest_plan_removes_intrinsic_bloat_on_gpt3(gpt3_profile: Profile, gpt3_frontier: Frontier) -> None:
    base = evaluate_all_max(gpt3_profile, gpt3_frontier.dag, 83.64)
    fastest = evaluate_point(gpt3_frontier, gpt3_profile, -1)
    # The artifact reports 15.2 % for this case (emulation); realised here within a point of it,
    # at a slowdown of a few tenths of a percent.
    assert 1 - fastest.energy_j / base.energy_j == pytest.approx(0.154, abs=0.01)
    assert fastest.time_s / base.time_s - 1 < 0.005


@pytest.mark.parametrize("basis", ["realised", "planned"])
def test_timeline_lays_out_every_computation_respecting_dependencies(
    gpt3_profile: Profile, gpt3_frontier: Frontier, basis: str
) -> None:
    k = len(gpt3_frontier) // 2
    entries = timeline(gpt3_frontier, gpt3_profile, k, basis=basis)
    dag = gpt3_frontier.dag
    assert len(entries) == dag.num_computations
    by_key = {(e.stage, e.instruction, e.microbatch): e for e in entries}
    for u, v in dag.edges:
        if u < dag.num_computations and v < dag.num_computations:
            cu, cv = dag.computations[u], dag.computations[v]
            assert by_key[(cv.stage, cv.instruction, cv.microbatch)].start_s >= (
                by_key[(cu.stage, cu.instruction, cu.microbatch)].end_s - 1e-12
            )
    end = max(e.end_s for e in entries)
    if basis == "planned":
        assert end == pytest.approx(gpt3_frontier.time_s[k])
    else:
        assert end == pytest.approx(evaluate_point(gpt3_frontier, gpt3_profile, k).time_s)
    critical = [e for e in entries if e.critical]
    assert min(e.start_s for e in critical) == pytest.approx(0.0)
    assert max(e.end_s for e in critical) == pytest.approx(end)
    freqs = gpt3_frontier.frequencies(k)
    assert sorted(e.freq_mhz for e in entries) == sorted(freqs)

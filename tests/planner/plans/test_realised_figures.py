"""A run's realised iteration time and energy from the plan client's markers (planner.plans.realised), as
the issue 12 contract defines them, checked against figures worked out by hand."""

from __future__ import annotations

import pytest

from planner.plans.realised import Event, Realised, realise, saving_fraction, time_change_fraction
from tests.planner.plans.loop_runs import iteration_events, plan_fields

PLAN_A = plan_fields(7, 3, predicted_time_s=1.0, predicted_energy_j=160.0, baseline_time_s=1.0,
                     baseline_energy_j=200.0)
PLAN_B = plan_fields(7, 5, predicted_time_s=1.5, predicted_energy_j=150.0, baseline_time_s=1.0,
                     baseline_energy_j=200.0, straggler_time_s=1.5, reason="straggler")


def events(markers: list[dict]) -> list[Event]:
    return [Event(m["t_ms"], m["kind"], {k: v for k, v in m.items() if k not in ("t_ms", "kind")}) for m in markers]


def test_warm_up_is_left_out_and_the_slowest_rank_sets_each_steps_time():
    times = [[9.0, 9.0, 1.0, 1.2, 1.1, 1.0], [9.0, 9.0, 1.1, 1.0, 1.3, 0.9]]
    energy = [[999.0, 999.0, 100.0, 110.0, 120.0, 130.0], [999.0, 999.0, 50.0, 60.0, 70.0, 80.0]]
    run = realise(events(iteration_events(times, energy, plans={(0, 0): PLAN_A, (1, 0): PLAN_A})))
    # Steps 2..5; slowest rank per step: 1.1, 1.2, 1.3, 1.0 -> 4.6 / 4. Energy: 115 + 65.
    assert run.whole == Realised(iterations=4, ranks=2, time_s=pytest.approx(1.15), energy_j=pytest.approx(180.0))
    [interval] = run.intervals
    assert interval.plan is not None and interval.plan.point == 3 and interval.plan.frontier_id == 7
    assert interval.realised == run.whole
    assert interval.plan.predicted_saving_fraction == pytest.approx(0.2)  # 1 - 160 / 200


def test_a_baseline_run_without_plans_leaves_out_its_first_two_iterations():
    times = [[5.0, 5.0, 2.0, 4.0]]
    run = realise(events(iteration_events(times, [[1.0, 1.0, 10.0, 30.0]])))
    assert run.whole == Realised(2, 1, pytest.approx(3.0), pytest.approx(20.0))
    assert run.plans == () and run.baseline_run == ""


def test_a_step_some_rank_did_not_report_is_not_counted():
    markers = iteration_events([[1.0] * 5, [2.0, 2.0, 2.0, 9.0, 2.0]], [[10.0] * 5, [20.0, 20.0, 20.0, 90.0, 20.0]])
    markers = [m for m in markers if not (m["kind"] == "iteration" and m["rank"] == 1 and m["step"] == 3)]
    run = realise(events(markers))
    assert run.whole == Realised(2, 2, pytest.approx(2.0), pytest.approx(30.0))  # steps 2 and 4


def test_a_straggler_switch_starts_a_new_interval_with_its_own_warm_up():
    # Rank 0 switches before step 6, rank 1 before step 7 (within two iterations, as the client does).
    times = [[1.0] * 6 + [1.5] * 6, [1.0] * 7 + [1.6] * 5]
    energy = [[100.0] * 6 + [70.0] * 6, [50.0] * 7 + [40.0] * 5]
    plans = {(0, 0): PLAN_A, (1, 0): PLAN_A, (0, 6): PLAN_B, (1, 7): PLAN_B}
    run = realise(events(iteration_events(times, energy, plans=plans)))
    first, second = run.intervals
    assert (first.index, first.plan.point, second.index, second.plan.point) == (0, 3, 1, 5)
    assert second.plan.reason == "straggler" and second.plan.straggler_time_s == pytest.approx(1.5)
    # Interval 0: steps 2..5. Interval 1: rank 0's warm-up is 6, 7; rank 1's 7, 8: steps 9..11.
    assert first.realised == Realised(4, 2, pytest.approx(1.0), pytest.approx(150.0))
    assert second.realised == Realised(3, 2, pytest.approx(1.6), pytest.approx(110.0))
    # The whole run: steps 2..5 and 9..11.
    assert run.whole.iterations == 7
    assert run.whole.time_s == pytest.approx((4 * 1.0 + 3 * 1.6) / 7)
    assert run.whole.energy_j == pytest.approx((4 * 100 + 3 * 70) / 7 + (4 * 50 + 3 * 40) / 7)
    # Predicted over the run: steps weighted, (4 * 160 + 3 * 150) / (7 * 200).
    assert run.predicted_saving_fraction() == pytest.approx(1 - (4 * 160 + 3 * 150) / 1400)


def test_a_rank_without_energy_leaves_the_runs_energy_unknown_but_not_its_time():
    markers = iteration_events([[1.0] * 4, [2.0] * 4], [[10.0] * 4, [20.0] * 4])
    for m in markers:
        if m["kind"] == "iteration" and m["rank"] == 1:
            del m["energy_j"]
    run = realise(events(markers))
    assert run.whole == Realised(2, 2, pytest.approx(2.0), None)


def test_markers_without_rank_step_or_time_are_counted_as_ignored_not_guessed():
    markers = iteration_events([[1.0] * 4], [[10.0] * 4])
    markers += [{"t_ms": 1, "kind": "iteration", "step": 9, "time_s": 5.0},
                {"t_ms": 2, "kind": "iteration", "rank": 0, "step": "9", "time_s": 5.0},
                {"t_ms": 3, "kind": "iteration", "rank": 0, "step": 9, "time_s": True},
                {"t_ms": 4, "kind": "step_end", "rank": 0, "step": 9}]
    run = realise(events(markers))
    assert run.ignored == 3 and run.whole == Realised(2, 1, pytest.approx(1.0), pytest.approx(10.0))


def test_saving_and_time_change_against_a_baseline():
    planned, baseline = Realised(10, 2, 1.004, 160.0), Realised(10, 2, 1.0, 200.0)
    assert saving_fraction(planned, baseline) == pytest.approx(0.2)
    assert time_change_fraction(planned, baseline) == pytest.approx(0.004)
    assert saving_fraction(planned, None) is None and time_change_fraction(planned, Realised()) is None

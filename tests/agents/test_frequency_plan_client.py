"""The frequency-plan client: replaying a plan in order, checking it against the loop, setting clocks."""

from __future__ import annotations

import pytest

from tests.agents.fake_nvml import FakeGpu, FakeNvml
from tests.agents.fake_stage import FakeStage
from wattwise_agent.backends.nvml import NvmlBackend
from wattwise_agent.clock_guard import ALLOW_CLOCK_CHANGES_ENV, ClockChangesRefused
from wattwise_agent.frequency_plan import PlanError
from wattwise_agent.plan_client import FrequencyPlanClient, PlanMismatch

ALLOWED = {ALLOW_CLOCK_CHANGES_ENV: "1"}
# Stage 0 of a 2-stage 1F1B pipeline with 3 microbatches: F F B F B B.
STEPS: list[tuple[str, int]] = [("forward", 1980), ("forward", 1500), ("backward", 1500), ("forward", 1500),
                                ("backward", 1200), ("backward", 1980)]
PLAN = {"rank": 0, "frequencies": [list(step) for step in STEPS]}
ORDER = [name for name, _ in STEPS]


def fake_gpu() -> tuple[FakeNvml, FakeStage, NvmlBackend]:
    nvml = FakeNvml([FakeGpu("GPU-rank-0", graphics_clocks_mhz=[1980, 1500, 1200, 1005])])
    return nvml, FakeStage(nvml.gpus[0]), NvmlBackend(["0"], nvml=nvml, environ={})


def run_steps(client: FrequencyPlanClient, steps: int, order: list[str] = ORDER, stage: FakeStage | None = None) -> None:
    for _ in range(steps):
        with client.step():
            for name in order:
                with client.instruction(name):
                    if stage is not None:
                        stage.compute(19.8 if name == "forward" else 39.6)


def test_a_dry_run_replays_the_plan_in_order_and_records_what_it_would_have_set() -> None:
    with FrequencyPlanClient(PLAN, backend=None, threaded=False) as client:
        assert client.dry_run
        run_steps(client, 3)
        assert client.steps == 3
    # Only changes: 1980 → 1500 → 1200 → 1980, then the next iteration starts at 1980 again (no change).
    assert client.requested_mhz == [1980, 1500, 1200, 1980] * 1 + [1500, 1200, 1980] * 2
    assert client.applied_mhz == []
    assert [r.instruction for r in client.records] == ORDER * 3
    assert [r.planned_freq_mhz for r in client.records][:6] == [1980, 1500, 1500, 1500, 1200, 1980]
    assert all(r.time_s >= 0 and r.energy_j is None for r in client.records)
    realised = {(r.instruction, r.freq_mhz): r.count for r in client.realised()}
    assert realised == {("forward", 1980): 3, ("forward", 1500): 6, ("backward", 1500): 3,
                        ("backward", 1200): 3, ("backward", 1980): 3}


def test_a_dry_run_on_a_real_backend_calls_no_clock_setting_function() -> None:
    nvml, stage, backend = fake_gpu()
    with FrequencyPlanClient(PLAN, backend=backend, environ=ALLOWED, synchronize=stage.synchronize,
                             timer=stage.timer) as client:
        run_steps(client, 2, stage=stage)
        client.flush()
    assert nvml.clock_calls == []
    assert client.requested_mhz == [1980, 1500, 1200, 1980, 1500, 1200, 1980]
    assert stage.syncs == 2 * 2 * len(ORDER)  # before each computation, and after it to time it
    first = client.records[0]
    assert first.time_s == pytest.approx(19.8 / 1980) and first.energy_j == pytest.approx(6.0, rel=1e-3)


def test_the_clock_is_locked_only_when_the_planned_value_changes_and_reset_at_the_end() -> None:
    nvml, stage, backend = fake_gpu()
    with FrequencyPlanClient(PLAN, backend=backend, allow_clock_changes=True, environ=ALLOWED, threaded=False,
                             synchronize=stage.synchronize, timer=stage.timer) as client:
        run_steps(client, 2, stage=stage)
        assert not client.dry_run and client.current_mhz == 1980
    locks = [c[2] for c in nvml.clock_calls if c[0] == "lock"]
    assert locks == [1980, 1500, 1200, 1980, 1500, 1200, 1980] == client.applied_mhz
    assert nvml.clock_calls[-1] == ("reset", "GPU-rank-0") and len(nvml.clock_calls) == len(locks) + 1
    # Each computation ran at its planned clock: the realised time is work / planned clock.
    for record in client.records:
        work = 19.8 if record.instruction == "forward" else 39.6
        assert record.time_s == pytest.approx(work / record.planned_freq_mhz)
        assert record.sm_clock_mhz == record.planned_freq_mhz
    assert "0,backward,1200," in client.realised_csv()


def test_the_helper_thread_applies_changes_in_order_and_ends_on_the_last_one() -> None:
    nvml, stage, backend = fake_gpu()
    with FrequencyPlanClient(PLAN, backend=backend, allow_clock_changes=True, environ=ALLOWED,
                             synchronize=stage.synchronize, timer=stage.timer) as client:
        run_steps(client, 5)
        client.flush()
        locks = [c[2] for c in nvml.clock_calls if c[0] == "lock"]
        assert locks[-1] == client.requested_mhz[-1] == 1980
        assert all(a != b for a, b in zip(locks, locks[1:]))
        remaining = iter(client.requested_mhz)
        assert all(value in remaining for value in locks)  # a subsequence: late values may be skipped
    assert nvml.clock_calls[-1][0] == "reset"


def test_a_loop_that_runs_another_instruction_than_planned_is_stopped_with_where() -> None:
    with FrequencyPlanClient(PLAN, backend=None, threaded=False) as client:
        client.on_step_begin()
        with client.instruction("forward"):
            pass
        with pytest.raises(PlanMismatch, match=r"step 0, instruction #2: the plan of rank 0 expects 'forward' but "
                                               r"the training loop runs 'backward'"):
            client.on_instruction_begin("backward")


def test_an_iteration_that_leaves_part_of_the_plan_unused_is_an_error() -> None:
    with FrequencyPlanClient(PLAN, backend=None, threaded=False) as client:
        run_steps(client, 1)
        client.on_step_begin()
        for name in ORDER[:4]:
            with client.instruction(name):
                pass
        with pytest.raises(PlanMismatch, match="step 1 ended after 4 of the 6 instructions"):
            client.on_step_end()
        with pytest.raises(PlanMismatch, match="ran only 4 of the plan's 6"):
            client.on_step_begin()


def test_more_computations_than_planned_is_an_error() -> None:
    with FrequencyPlanClient(PLAN, backend=None, threaded=False) as client:
        for name in ORDER:
            with client.instruction(name):
                pass
        with pytest.raises(PlanMismatch, match=r"instruction #7 .* has 6 per iteration"):
            client.on_instruction_begin("forward")


def test_clock_changes_need_the_environment_variable_too() -> None:
    nvml, _, backend = fake_gpu()
    with pytest.raises(ClockChangesRefused, match=f"{ALLOW_CLOCK_CHANGES_ENV} is unset"):
        FrequencyPlanClient(PLAN, backend=backend, allow_clock_changes=True, environ={})
    with pytest.raises(ClockChangesRefused, match="no clock control"):
        FrequencyPlanClient(PLAN, backend=None, allow_clock_changes=True, environ=ALLOWED)
    assert nvml.clock_calls == []


def test_a_plan_with_clocks_the_gpu_does_not_support_is_refused_before_training() -> None:
    nvml, _, backend = fake_gpu()
    plan = {"rank": 0, "frequencies": [["forward", 1410], ["backward", 1980]]}
    with pytest.raises(PlanError, match=r"\[1410\] MHz are not supported SM clocks of GPU-rank-0"):
        FrequencyPlanClient(plan, backend=backend, allow_clock_changes=True, environ=ALLOWED)
    assert nvml.clock_calls == []


@pytest.mark.app
def test_the_planners_own_plan_replays_in_a_1f1b_loop_with_energy_from_the_simulator() -> None:
    from planner import perseus

    profile = perseus.parse_profile(perseus.synthetic_profile_csv(2, "a100"))
    frontier = perseus.solve_frontier(profile, perseus.PlanningProblem(2, 4, 0.001, 80.0))
    plan_json = perseus.plan_at(frontier, -1).to_json()
    one_f_one_b = {0: ["forward", "forward", "backward", "forward", "backward", "forward", "backward", "backward"],
                   1: ["forward", "backward"] * 4}
    for rank, order in one_f_one_b.items():
        with FrequencyPlanClient(plan_json, rank=rank, backend="simulated", threaded=False) as client:
            run_steps(client, 2, order=order)
        assert len(client.records) == 16
        assert all(r.energy_j is not None and r.energy_j >= 0 for r in client.records)
        assert client.requested_mhz[0] == client.plan.frequencies[0][1]
    with pytest.raises(PlanError, match="has 2 ranks"):
        FrequencyPlanClient(plan_json, backend=None)

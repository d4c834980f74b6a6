"""The power-limit optimiser on emulated GPUs: it keeps the limit Zeus's cost picks, and its saving is the measured one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agents import emulation_support
from tests.agents.emulation_support import VirtualTime, emulated_gpu, fastest_time_s
from tests.agents.support import TOKEN, opened
from wattwise_agent.backends.emulated import EmulatedGpuBackend
from wattwise_agent.clock_guard import ALLOW_CLOCK_CHANGES_ENV
from wattwise_agent.integrations.training_run import POWER_LIMIT_SAVING_PCT, POWER_LIMIT_W, TrainingRun
from wattwise_agent.power_limit import PowerLimitOptimizer
from wattwise_agent.transport import MemoryTransport

ALLOWED = {ALLOW_CLOCK_CHANGES_ENV: "1"}
COMMUNICATION_S = 0.01  # the all-reduce and optimizer step of each data-parallel step: blocking power
RESOLUTION_J = 0.002  # two counter readings per step, each floored to the mJ


def train_step(gpu: EmulatedGpuBackend, time: VirtualTime) -> None:
    """One data-parallel step of one rank: a forward and a backward as long as the profile's fastest ones."""
    for name in ("forward", "backward"):
        gpu.begin_computation(name)
        time.compute(fastest_time_s(name))
        gpu.end_computation(name)
    time.compute(COMMUNICATION_S)


def profile_step(limit_w: int) -> tuple[float, float]:
    return emulation_support.profile_step(limit_w, COMMUNICATION_S)


def measured_per_step(gpu: EmulatedGpuBackend, time: VirtualTime, steps: int) -> tuple[float, float]:
    start_s, start_j = time.now_s, gpu.energy_j()
    for _ in range(steps):
        train_step(gpu, time)
    return (time.now_s - start_s) / steps, (gpu.energy_j() - start_j) / steps


def optimise(gpu: EmulatedGpuBackend, time: VirtualTime, **options: Any) -> PowerLimitOptimizer:
    optimizer = PowerLimitOptimizer(gpu, warmup_steps=1, profile_steps=2, handle_sigterm=False, timer=time.timer,
                                    reduce=None, **options)
    for _ in range(optimizer.planned_steps):
        train_step(gpu, time)
        optimizer.on_step_end()
    return optimizer


@pytest.mark.parametrize("eta", [0.0, 0.5, 0.9, 1.0])
def test_the_optimiser_keeps_the_limit_the_cost_picks_and_its_saving_is_what_runs_measure(eta: float) -> None:
    time = VirtualTime()
    gpu = emulated_gpu(time)
    optimizer = optimise(gpu, time, eta=eta, allow_clock_changes=True, environ=ALLOWED)
    choice = optimizer.choice
    assert choice is not None and not choice.dry_run
    assert optimizer.limits_w == list(range(425, 174, -25))  # the emulated range, highest first, 25 W steps
    # The measured table is what the profile says each limit gives.
    for trial in choice.trials:
        time_s, energy_j = profile_step(trial.limit_w)
        assert trial.time_s == pytest.approx(time_s, rel=1e-9)
        assert trial.energy_j == pytest.approx(energy_j, abs=RESOLUTION_J)
    # The choice: Zeus's cost over the measured table, computed here.
    max_power_w = 425 * 1
    costs = {t.limit_w: eta * t.energy_j + (1 - eta) * max_power_w * t.time_s for t in choice.trials}
    assert choice.limit_w == min(costs, key=lambda w: (costs[w], -w))
    assert gpu.power_limit_w == choice.limit_w  # kept
    # Its reported saving is what a run at the kept limit saves against a run at the maximum limit.
    kept_s, kept_j = measured_per_step(gpu, time, 5)
    baseline_time = VirtualTime()
    baseline_s, baseline_j = measured_per_step(emulated_gpu(baseline_time), baseline_time, 5)
    assert choice.energy_saving_pct == pytest.approx((baseline_j - kept_j) / baseline_j * 100, abs=0.01)
    assert choice.time_change_pct == pytest.approx((kept_s - baseline_s) / baseline_s * 100, abs=0.01)
    if eta >= 0.9:
        assert choice.limit_w < 425 and choice.energy_saving_pct > 1  # energy weighs most: a real saving
    optimizer.close()
    assert gpu.changes[-1] == ("power_limit", None)


def test_a_dry_run_tries_and_decides_but_changes_no_limit() -> None:
    time = VirtualTime()
    gpu = emulated_gpu(time)
    optimizer = optimise(gpu, time, eta=1.0, environ=ALLOWED)
    choice = optimizer.choice
    assert choice is not None and choice.dry_run and "dry run" in choice.summary()
    assert gpu.changes == [] and gpu.power_limit_w == 425
    _, at_max_j = profile_step(425)
    assert all(t.energy_j == pytest.approx(at_max_j, abs=RESOLUTION_J) for t in choice.trials)  # all at 425 W
    assert optimizer._actuator.requested_w[: len(optimizer.limits_w)] == optimizer.limits_w  # what it would set
    optimizer.close()
    assert gpu.changes == []


def test_the_tracker_and_the_callbacks_run_the_optimiser_at_their_step_markers() -> None:
    time = VirtualTime()
    gpu = emulated_gpu(time)
    transport = MemoryTransport()
    options = {"allow_clock_changes": True, "environ": ALLOWED, "eta": 1.0, "warmup_steps": 1, "profile_steps": 2,
               "limits_w": [425, 300, 200], "timer": time.timer, "handle_sigterm": False}
    training = TrainingRun("dp-power", {"backend": gpu, "transport": transport, "token": TOKEN, "node": "n",
                                        "optimize_power_limit": options})
    training.begin("unused")
    tracker = training.tracker
    assert tracker is not None and tracker.power_limit is not None
    for step in range(tracker.power_limit.planned_steps + 2):
        for name in ("forward", "backward"):
            with tracker.stage(name):  # the Tracker's stages drive the emulated GPU
                time.compute(fastest_time_s(name))
        time.compute(COMMUNICATION_S)
        training.step(step)
    figures = training.figures()
    choice = tracker.power_limit.choice
    assert choice is not None and gpu.power_limit_w == choice.limit_w
    assert figures[POWER_LIMIT_W] == choice.limit_w
    assert figures[POWER_LIMIT_SAVING_PCT] == pytest.approx(choice.energy_saving_pct)
    assert choice.trials[0].energy_j == pytest.approx(profile_step(425)[1], abs=RESOLUTION_J)
    training.end()
    assert gpu.changes[-1] == ("power_limit", None)  # the default limit again when the run ended
    events = [e for env in transport.envelopes if env["kind"] == "batch" for e in opened(env).get("events", [])
              if e["kind"] == "power_limit"]
    assert [(e["phase"], e["limit_w"]) for e in events] == [("trial", 425), ("trial", 300), ("trial", 200),
                                                           ("chosen", choice.limit_w)]
    assert events[-1]["energy_saving_pct"] == pytest.approx(choice.energy_saving_pct, abs=0.001)

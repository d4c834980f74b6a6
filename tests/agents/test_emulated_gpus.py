"""Emulated GPUs: every computation takes the time and energy of the Perseus profile at its clock (and power limit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.agents.emulation_support import (
    P_BLOCKING_W,
    VirtualTime,
    emulated_gpu,
    fastest_time_s,
    profile_table,
)
from tests.agents.support import TOKEN
from wattwise_agent.backends.emulated import EmulatedGpuBackend, EmulationProfile
from wattwise_agent.clock_guard import ALLOW_CLOCK_CHANGES_ENV, ClockActuator, ClockChangesRefused
from wattwise_agent.plan_client import FrequencyPlanClient
from wattwise_agent.power_guard import PowerLimitActuator
from wattwise_agent.profiling import StageProfiler
from wattwise_agent.torch_hooks import Tracker
from wattwise_agent.transport import MemoryTransport

ALLOWED = {ALLOW_CLOCK_CHANGES_ENV: "1"}
ROOT = Path(__file__).resolve().parents[2]
SWEEP_MHZ = [1410, 1200, 990]
COUNTER_RESOLUTION_J = 0.001
CLOCKS_MHZ = sorted({f for _, f in profile_table()}, reverse=True)


def counter_j(gpu: EmulatedGpuBackend) -> float:
    """The GPU's energy counter as any reader sees it (whole mJ), in J."""
    reading = gpu.read(0)[0]
    assert reading is not None and reading.energy_mj is not None
    return reading.energy_mj / 1000


def clock_now(gpu: EmulatedGpuBackend) -> int:
    reading = gpu.read(0)[0]
    assert reading is not None
    return reading.sm_clock_mhz


def train_stage(hooks: StageProfiler | FrequencyPlanClient, time: VirtualTime, steps: int,
                ran: list[tuple[str, int]] | None = None, gpu: EmulatedGpuBackend | None = None) -> None:
    """Steps of 2 forwards then 2 backwards; each host computation takes the profile's fastest time."""
    for _ in range(steps):
        with hooks.step():
            for name in ("forward", "forward", "backward", "backward"):
                with hooks.instruction(name):
                    if ran is not None and gpu is not None:
                        ran.append((name, clock_now(gpu)))
                    time.compute(fastest_time_s(name))
                time.compute(0.002)  # pipeline communication: blocking power


def test_a_clock_sweep_on_emulated_gpus_measures_the_profile_they_emulate() -> None:
    time = VirtualTime()
    gpu = emulated_gpu(time)
    table = profile_table()
    ran: list[tuple[str, int]] = []
    start_s, start_j = time.now_s, counter_j(gpu)
    with StageProfiler(0, backend=gpu, allow_clock_changes=True, environ=ALLOWED, freqs_mhz=SWEEP_MHZ,
                       warmup_steps=1, measure_steps=2, synchronize=lambda: None, timer=time.timer,
                       handle_sigterm=False) as profiler:
        train_stage(profiler, time, profiler.planned_steps + 1, ran, gpu)  # one step more, after the reset
        profile = profiler.result()
        end_s, end_j = time.now_s, counter_j(gpu)
        assert profiler.measure_blocking_power(0.5, block=time.compute) == pytest.approx(P_BLOCKING_W, abs=0.01)
    # What the sweep measured can itself be emulated: the same clocks, figures and blocking power.
    again = EmulationProfile.from_stage_profile(profiler.result())
    assert again.clocks_mhz == tuple(SWEEP_MHZ) and again.p_blocking_w == pytest.approx(P_BLOCKING_W, abs=0.01)
    assert "emulated GPUs: times and energies follow the profile they emulate" in profile.notes

    assert [(r.instruction, r.freq_mhz) for r in profile.rows] == [(i, f) for f in SWEEP_MHZ
                                                                  for i in ("forward", "backward")]
    for row in profile.rows:
        time_s, energy_j = table[(row.instruction, row.freq_mhz)]
        assert row.time_s == pytest.approx(time_s, rel=1e-9)
        assert abs(row.energy_j - energy_j) <= COUNTER_RESOLUTION_J
    # The counter over the whole run: each computation's profiled energy, blocking power the rest of the time.
    assert [f for _, f in ran] == [f for f in SWEEP_MHZ for _ in range(3 * 4)] + [1410] * 4
    busy_s = sum(table[c][0] for c in ran)
    expected_j = sum(table[c][1] for c in ran) + P_BLOCKING_W * (end_s - start_s - busy_s)
    assert end_j - start_j == pytest.approx(expected_j, abs=COUNTER_RESOLUTION_J)
    assert gpu.locked_mhz is None  # the sweep's last clock was reset


def test_the_plan_client_on_emulated_gpus_realises_the_profile_at_each_planned_clock() -> None:
    time = VirtualTime()
    gpu = emulated_gpu(time)
    plan = {"rank": 0, "frequencies": [["forward", 1410], ["forward", 1005], ["backward", 1200], ["backward", 1410]]}
    tracker = Tracker("planned", backend=gpu, transport=MemoryTransport(), token=TOKEN, node="n")
    with tracker, FrequencyPlanClient(plan, backend=gpu, allow_clock_changes=True, environ=ALLOWED, threaded=False,
                                      synchronize=lambda: None, timer=time.timer, handle_sigterm=False) as client:
        for _ in range(3):  # the run measured by a Tracker too: its stages bracket the same computations
            with client.step():
                for name in ("forward", "forward", "backward", "backward"):
                    with tracker.stage(name), client.instruction(name):
                        time.compute(fastest_time_s(name))
                    time.compute(0.002)
            tracker.step()
        realised = client.realised()
    assert len(gpu.history) == 12  # each computation once, however many brackets
    table = profile_table()
    assert {(r.instruction, r.freq_mhz) for r in realised} == {("forward", 1410), ("forward", 1005),
                                                               ("backward", 1200), ("backward", 1410)}
    for row in realised:
        time_s, energy_j = table[(row.instruction, row.freq_mhz)]
        assert row.count == 3
        assert row.time_s == pytest.approx(time_s, rel=1e-9)
        assert row.energy_j is not None and abs(row.energy_j - energy_j) <= COUNTER_RESOLUTION_J
    assert gpu.changes[-1] == ("clock", None)  # reset when the client closed


def oracle_clock(instruction: str, ceiling_mhz: int, limit_w: int | None) -> int:
    """The highest profiled clock at or below the ceiling whose profiled power is within the limit."""
    table = profile_table()
    for freq in CLOCKS_MHZ:
        time_s, energy_j = table[(instruction, freq)]
        if freq <= ceiling_mhz and (limit_w is None or energy_j / time_s <= limit_w):
            return freq
    return CLOCKS_MHZ[-1]


OPERATIONS = st.one_of(
    st.tuples(st.just("lock"), st.sampled_from(CLOCKS_MHZ)),
    st.tuples(st.just("unlock"), st.none()),
    st.tuples(st.just("limit"), st.integers(175, 425)),
    st.tuples(st.just("unlimit"), st.none()),
    st.tuples(st.just("forward"), st.floats(0.0, 0.2)),
    st.tuples(st.just("backward"), st.floats(0.0, 0.2)),
    st.tuples(st.just("idle"), st.floats(0.0, 0.5)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(OPERATIONS, max_size=25))
def test_the_energy_counter_is_the_profile_power_over_the_stretched_time(operations: list[tuple[str, object]]) -> None:
    time = VirtualTime()
    gpu = emulated_gpu(time)
    clocks = ClockActuator(gpu.clocks(), allow_clock_changes=True, environ=ALLOWED, handle_sigterm=False)
    limits = PowerLimitActuator(gpu.power_limits(), allow_clock_changes=True, environ=ALLOWED, handle_sigterm=False)
    table = profile_table()
    ceiling, limit = CLOCKS_MHZ[0], None
    expected_j = expected_s = 0.0
    start_j, start_s = gpu.energy_j(), time.now_s
    for what, value in operations:
        if what == "lock":
            clocks.set_mhz(int(value))  # type: ignore[call-overload]
            ceiling = int(value)  # type: ignore[call-overload]
        elif what == "unlock":
            clocks.reset()
            ceiling = CLOCKS_MHZ[0]
        elif what == "limit":
            limits.set_w(int(value))  # type: ignore[call-overload]
            limit = int(value)  # type: ignore[call-overload]
        elif what == "unlimit":
            limits.reset()
            limit = None
        elif what == "idle":
            time.compute(float(value))  # type: ignore[arg-type]
            expected_j += P_BLOCKING_W * float(value)  # type: ignore[arg-type]
            expected_s += float(value)  # type: ignore[arg-type]
        else:
            gpu.begin_computation(what)
            time.compute(float(value))  # type: ignore[arg-type]
            gpu.end_computation(what)
            time_s, energy_j = table[(what, oracle_clock(what, ceiling, limit))]
            stretched_s = float(value) * time_s / fastest_time_s(what)  # type: ignore[arg-type]
            expected_j += energy_j / time_s * stretched_s
            expected_s += stretched_s
    assert time.now_s - start_s == pytest.approx(expected_s, rel=1e-9, abs=1e-9)
    assert gpu.energy_j() - start_j == pytest.approx(expected_j, rel=1e-9, abs=1e-9)
    clocks.close()
    limits.close()


def test_a_clock_change_during_a_computation_charges_each_part_at_its_own_clock() -> None:
    time = VirtualTime()
    gpu = emulated_gpu(time)
    table = profile_table()
    clocks = ClockActuator(gpu.clocks(), allow_clock_changes=True, environ=ALLOWED, handle_sigterm=False)
    start_j = gpu.energy_j()
    gpu.begin_computation("forward")
    time.compute(0.01)  # at 1410 MHz
    clocks.set_mhz(1005)  # as the plan client's helper thread may, a little late
    time.compute(0.02)
    gpu.end_computation("forward")
    fastest = fastest_time_s("forward")
    expected_j = sum(part_s / fastest * table[("forward", f)][1] for f, part_s in ((1410, 0.01), (1005, 0.02)))
    assert gpu.energy_j() - start_j == pytest.approx(expected_j, rel=1e-9)
    clocks.close()


def test_pace_makes_each_computation_last_its_profiled_time_whatever_the_host_took() -> None:
    time = VirtualTime()
    gpu = emulated_gpu(time, pace=0.5)
    table = profile_table()
    for host_s in (0.0, 0.001, 0.02):
        start_s, start_j = time.now_s, gpu.energy_j()
        gpu.begin_computation("backward")
        time.compute(host_s)
        gpu.end_computation("backward")
        assert time.now_s - start_s == pytest.approx(0.5 * table[("backward", 1410)][0], rel=1e-9)
        assert gpu.energy_j() - start_j == pytest.approx(0.5 * table[("backward", 1410)][1], rel=1e-9)
    assert gpu.overruns == 0


@pytest.mark.parametrize(("argument", "environ"), [(False, {}), (False, ALLOWED), (True, {}),
                                                   (True, {ALLOW_CLOCK_CHANGES_ENV: "yes"})])
def test_without_both_opt_ins_no_emulated_clock_or_power_limit_changes(argument: bool, environ: dict[str, str]) -> None:
    time = VirtualTime()
    gpu = emulated_gpu(time)
    if argument:
        with pytest.raises(ClockChangesRefused):
            StageProfiler(0, backend=gpu, allow_clock_changes=True, environ=environ, handle_sigterm=False)
        with pytest.raises(ClockChangesRefused):
            PowerLimitActuator(gpu.power_limits(), allow_clock_changes=True, environ=environ)
    else:
        with StageProfiler(0, backend=gpu, environ=environ, warmup_steps=1, measure_steps=1,
                           synchronize=lambda: None, timer=time.timer) as profiler:
            train_stage(profiler, time, profiler.planned_steps)
        limits = PowerLimitActuator(gpu.power_limits(), environ=environ)
        assert limits.set_w(200) and limits.requested_w == [200] and limits.applied_w == []
        limits.close()
        assert {c.freq_mhz for c in gpu.history} == {1410}  # the dry run profiled at the default clock
    assert gpu.changes == []
    assert gpu.locked_mhz is None and gpu.power_limit_w == gpu.power_limit_range_w[1]


SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    from tests.agents.emulation_support import VirtualTime, emulated_gpu
    from wattwise_agent.clock_guard import ClockActuator
    from wattwise_agent.power_guard import PowerLimitActuator

    allowed = {{"WATTWISE_ALLOW_CLOCK_CHANGES": "1"}}
    gpu = emulated_gpu(VirtualTime())
    _change = gpu._change
    def change(what, value):
        _change(what, value)
        if value is None:
            print("reset", what, flush=True)
    gpu._change = change
    clocks = ClockActuator(gpu.clocks(), allow_clock_changes=True, environ=allowed)
    limits = PowerLimitActuator(gpu.power_limits(), allow_clock_changes=True, environ=allowed)
    clocks.set_mhz(1005)
    limits.set_w(250)
    print("set", gpu.locked_mhz, gpu.power_limit_w, flush=True)
    if sys.argv[1] == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        print("still alive", flush=True)
""")


@pytest.mark.parametrize("ending", ["sigterm", "exit"])
def test_an_emulated_clock_and_power_limit_are_reset_when_the_process_ends(ending: str, tmp_path: Path) -> None:
    script = tmp_path / "emulated.py"
    script.write_text(SCRIPT.format(root=str(ROOT)))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "agents")])
    result = subprocess.run([sys.executable, str(script), ending], capture_output=True, text=True, timeout=60,
                            env=environment, cwd=ROOT)
    lines = result.stdout.splitlines()
    assert lines[0] == "set 1005 250", result.stderr
    assert sorted(lines[1:]) == ["reset clock", "reset power_limit"], result.stderr
    assert result.returncode == (-signal.SIGTERM if ending == "sigterm" else 0)


def test_a_straggler_makes_the_sync_wait_until_its_iteration_time_at_blocking_power() -> None:
    time = VirtualTime()
    gpu = emulated_gpu(time, pace=1.0)
    assert gpu.wait_for_peers() == 0.0  # no straggler: no wait
    gpu.straggler_iteration_s = 0.5
    gpu.begin_iteration()
    start_s, start_j = time.now_s, gpu.energy_j()
    gpu.begin_computation("forward")
    gpu.end_computation("forward")  # lasts its profiled time at 1410 MHz
    forward_s, forward_j = profile_table()[("forward", 1410)]
    assert gpu.wait_for_peers() == pytest.approx(0.5 - forward_s)
    assert time.now_s - start_s == pytest.approx(0.5)
    assert gpu.energy_j() - start_j == pytest.approx(forward_j + P_BLOCKING_W * (0.5 - forward_s))
    gpu.straggler_iteration_s = None  # settable at any time
    gpu.begin_iteration()
    assert gpu.wait_for_peers() == 0.0
    with pytest.raises(ValueError, match="straggler_iteration_s"):
        gpu.straggler_iteration_s = -1.0


CLIENT_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    from tests.agents.emulation_support import VirtualTime, emulated_gpu
    from wattwise_agent.plan_client import FrequencyPlanClient

    gpu = emulated_gpu(VirtualTime(), pace=1.0)
    _change = gpu._change
    def change(what, value):
        _change(what, value)
        if value is None:
            print("reset", what, flush=True)
    gpu._change = change
    plan = {{"rank": 0, "frequencies": [["forward", 1005], ["backward", 1005]]}}
    client = FrequencyPlanClient(plan, backend=gpu, allow_clock_changes=True, threaded=False,
                                 synchronize=lambda: None, environ={{"WATTWISE_ALLOW_CLOCK_CHANGES": "1"}})
    gpu.straggler_iteration_s = 2.0
    client.on_step_begin()
    with client.instruction("forward"):
        pass
    print("set", gpu.locked_mhz, flush=True)
    if sys.argv[1] == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        print("still alive", flush=True)
""")


@pytest.mark.parametrize("ending", ["sigterm", "exit"])
def test_the_plan_clients_clock_is_reset_when_the_process_ends_mid_iteration(ending: str, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(CLIENT_SCRIPT.format(root=str(ROOT)))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "agents")])
    result = subprocess.run([sys.executable, str(script), ending], capture_output=True, text=True, timeout=60,
                            env=environment, cwd=ROOT)
    assert result.stdout.splitlines() == ["set 1005", "reset clock"], result.stderr
    assert result.returncode == (-signal.SIGTERM if ending == "sigterm" else 0)

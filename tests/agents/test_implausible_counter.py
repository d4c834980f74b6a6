"""An interval no device could draw counts 0 J and is reported (issue 15, item 2): a counter that steps back
1 mJ is no reset, a jump of 1e15 mJ in 100 ms counts nothing; a restart near zero still counts, and a GPU's own
power limit bounds it more tightly than the ceiling."""

from __future__ import annotations

import numpy as np
import pytest

from tests.agents.fake_nvml import FakeGpu, FakeNvml
from tests.agents.support import TOKEN, batches
from wattwise_agent import wire
from wattwise_agent.backends.nvml import NvmlBackend
from wattwise_agent.clock import VirtualClock
from wattwise_agent.run_energy import EnergyTally
from wattwise_agent.streamer import Streamer
from wattwise_agent.transport import MemoryTransport

T0_MS = 1_767_225_600_000
UUID = "GPU-00000000-1111-2222-3333-444455556666"
BASE_MJ = 10_000_000_000  # a counter that has run for a while: 10 MJ since the driver loaded
STEP_MJ = 49_000  # 490 W for 100 ms
GLITCH = 12


def truth_mj(samples: int) -> np.ndarray:
    """Cumulative energy of a GPU drawing 490 W, read every 100 ms."""
    return BASE_MJ + STEP_MJ * np.arange(samples, dtype=np.int64)


def count(readings: np.ndarray, limit_w: float = wire.DEFAULT_MAX_POWER_W) -> wire.WindowEnergy:
    t_ms = T0_MS + 100 * np.arange(readings.size, dtype=np.int64)
    return wire.count_window_mj(readings, t_ms, None, limit_w)


@pytest.mark.parametrize("offset_mj", [-STEP_MJ - 1, 10**15], ids=["steps-back-1-mJ", "jumps-1e15-mJ"])
def test_a_broken_counter_step_counts_nothing_and_the_rest_counts_exactly(offset_mj: int) -> None:
    truth = truth_mj(30)
    readings = truth.copy()
    readings[GLITCH:] += offset_mj  # from the glitch on, the counter is off by offset_mj
    counted = count(readings)
    true_steps = np.diff(truth, prepend=truth[0])
    assert int(counted.deltas_mj.sum()) == int(true_steps.sum() - true_steps[GLITCH])  # the truth of the valid intervals
    [flagged] = counted.implausible
    assert flagged.t_ms == T0_MS + 100 * GLITCH and flagged.limit_mj == 2 * 2000 * 1100
    assert "counts 0 J" in flagged.describe()
    if offset_mj < 0:
        assert "stepped back" in flagged.describe() and "not a restart near zero" in flagged.describe()


def test_a_restart_near_zero_is_a_reset_and_counts_its_new_value() -> None:
    truth = truth_mj(30)
    readings = truth.copy()
    readings[GLITCH:] -= truth[GLITCH - 1]  # the driver reloaded just after reading GLITCH - 1
    counted = count(readings)
    assert counted.implausible == ()
    assert int(counted.deltas_mj.sum()) == int(truth[-1] - truth[0])


def test_a_gpu_s_own_power_limit_bounds_its_intervals_more_tightly_than_the_ceiling() -> None:
    readings = np.array([BASE_MJ, BASE_MJ + 2 * 700 * 1100 + 1], dtype=np.int64)  # 15.4 kW for 100 ms
    assert count(readings).implausible == ()  # under the 2 kW ceiling's bound
    assert len(count(readings, limit_w=700.0).implausible) == 1
    entry = wire.gpu_payload(uuid=UUID, index=0, name="", energy_source=wire.ENERGY_COUNTER,
                             power_field=wire.POWER_INSTANT, prev=(T0_MS - 100, BASE_MJ), power_limit_mw=700_000,
                             columns={"t_ms": [T0_MS], "energy_mj": [int(readings[1])], "power_mw": [1],
                                      "sm_clock_mhz": [1], "util_pct": [1], "temp_c": [1]})
    window = wire.parse(wire.GpuWindow, entry)
    assert window.energy_deltas_mj().tolist() == [0] and len(window.counted_energy().implausible) == 1


def stream(nvml: FakeNvml, readings: np.ndarray) -> MemoryTransport:
    clock = VirtualClock(T0_MS)
    transport = MemoryTransport()
    streamer = Streamer(NvmlBackend(None, nvml=nvml, environ={}), transport, run="r", token=TOKEN, node="n",
                        clock=clock, window_s=1.0)
    streamer.open()
    for k, reading in enumerate(readings.tolist()):
        nvml.gpus[0].energy_mj = reading
        clock.sleep_until(T0_MS + 100 * k)
        streamer.tick()
    streamer.close()
    return transport


def test_the_agent_sends_its_gpu_s_power_limit_and_its_summary_counts_as_the_app_does() -> None:
    truth = truth_mj(40)
    readings = truth.copy()
    readings[GLITCH:] += 10**15
    nvml = FakeNvml([FakeGpu(UUID, energy_mj=int(readings[0]))])
    decoded = batches(stream(nvml, readings).envelopes)
    assert {g.power_limit_mw for b in decoded for g in b.gpus} == {700_000}  # NVML's highest settable limit
    tally = EnergyTally()
    tally.add_batches([b.model_dump() for b in decoded])
    counted_mj = sum(int(g.energy_deltas_mj().sum()) for b in decoded for g in b.gpus)
    expected_mj = int(truth[-1] - truth[0]) - STEP_MJ  # every interval but the jump's
    assert counted_mj == expected_mj
    assert tally.snapshot().energy_j[UUID] == pytest.approx(expected_mj / 1000, abs=1e-9)


def window_payload(readings: np.ndarray) -> dict[str, object]:
    """One batch of a device that sends no power limit (a CPU package, a GPU NVML cannot say it for)."""
    t_ms = (T0_MS + 100 * np.arange(readings.size, dtype=np.int64)).tolist()
    ones = [1] * readings.size
    entry = wire.gpu_payload(uuid=UUID, index=0, name="", energy_source=wire.ENERGY_COUNTER,
                             power_field=wire.POWER_INSTANT, prev=None,
                             columns={"t_ms": t_ms, "energy_mj": readings.tolist(), "power_mw": ones,
                                      "sm_clock_mhz": ones, "util_pct": ones, "temp_c": ones})
    return {"gpus": [entry], "events": []}


def test_the_agent_s_summary_honours_the_max_gpu_power_the_app_is_configured_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    truth = truth_mj(30)
    readings = truth.copy()
    readings[GLITCH:] += 2 * 700 * 1100  # 15.4 kW for 100 ms: under twice 2 kW over 1.1 s, over twice 700 W
    payload = window_payload(readings)
    window = wire.parse(wire.GpuWindow, payload["gpus"][0])  # type: ignore[index]
    monkeypatch.delenv(wire.MAX_POWER_ENV, raising=False)
    unset = EnergyTally()
    unset.add_batches([payload])
    monkeypatch.setenv(wire.MAX_POWER_ENV, "700")
    configured = EnergyTally()
    configured.add_batches([payload])
    # As the app counts with each ceiling (batch_store: counted_energy(settings.WATTWISE_MAX_GPU_POWER_W)).
    assert unset.snapshot().energy_j[UUID] * 1000 == int(window.counted_energy(2000.0).deltas_mj.sum())
    assert configured.snapshot().energy_j[UUID] * 1000 == int(window.counted_energy(700.0).deltas_mj.sum())
    assert configured.snapshot().energy_j[UUID] * 1000 == int(truth[-1] - truth[0]) - STEP_MJ  # the jump: 0 J


@pytest.mark.parametrize(("value", "ceiling_w"), [(None, 2000.0), ("", 2000.0), (" 1500.5 ", 1500.5), ("1", 1.0)])
def test_the_ceiling_is_read_as_the_app_reads_it(value: str | None, ceiling_w: float) -> None:
    environ = {} if value is None else {wire.MAX_POWER_ENV: value}
    assert wire.max_power_w_from_env(environ) == ceiling_w


@pytest.mark.parametrize("value", ["two kW", "0.5", "-700", "nan"])
def test_a_bad_ceiling_stops_the_stream_before_it_starts_naming_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(wire.MAX_POWER_ENV, value)
    nvml = FakeNvml([FakeGpu(UUID)])
    with pytest.raises(ValueError, match=f"{wire.MAX_POWER_ENV}='{value}'"):
        Streamer(NvmlBackend(None, nvml=nvml, environ={}), MemoryTransport(), run="r", token=TOKEN, node="n",
                 clock=VirtualClock(T0_MS))

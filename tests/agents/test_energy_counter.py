"""The energy counter rule, one on both sides: a step back is a wraparound (near the top to a small value) or a
reset (anything else); NVML's unsigned 64-bit counter travels modulo 2**63, which the wire and the columns hold."""

from __future__ import annotations

import numpy as np
import pytest

from tests.agents.fake_nvml import FakeGpu, FakeNvml
from tests.agents.support import TOKEN, batches, energy_by_gpu_mj
from wattwise_agent import wire
from wattwise_agent.backends.nvml import NvmlBackend
from wattwise_agent.clock import VirtualClock
from wattwise_agent.energy_meter import EnergyMeter
from wattwise_agent.streamer import Streamer
from wattwise_agent.transport import MemoryTransport

T0_MS = 1_767_225_600_000
TOP = wire.ENERGY_MODULUS_MJ  # 2**63
UUID = "GPU-00000000-1111-2222-3333-444455556666"


@pytest.mark.parametrize(
    "before, after, counted",
    [
        (5_000, 7_500, 2_500),  # forwards: the difference
        (5_000_000_000, 250, 250),  # a driver reload: the new value, counted from zero
        (TOP - 1_000, 300, 1_300),  # from near the top to a small value: wrapped, the distance forwards
        (TOP - 1, 0, 1),
        (TOP - 2**31, 2**31, 2**32),  # the furthest a wrap may move
        (TOP - 2**31, 2**31 + 1, 2**31 + 1),  # one mJ further is no wrap: a reset
        (2**64 - 100, 2**64 + 400, 500),  # raw NVML values (unsigned 64-bit) are taken modulo 2**63
        (2**64 - 100, 400, 500),  # NVML's own wraparound at 2**64
        (7_000, 7_000, 0),
    ],
)
def test_one_step_of_the_counter(before: int, after: int, counted: int) -> None:
    assert wire.counter_step_mj(before, after) == counted


def test_a_window_counts_each_step_by_the_rule() -> None:
    readings = np.array([TOP - 600, TOP - 300, 0, 300, 42, 342], dtype=np.int64)
    assert wire.counter_steps_mj(readings).tolist() == [300, 300, 300, 42, 300]


@pytest.mark.parametrize("field", ["energy_mj", "prev_energy_mj"])
def test_the_wire_holds_counters_below_two_to_the_63_and_refuses_more(field: str) -> None:
    entry = wire.gpu_payload(uuid=UUID, index=0, name="", energy_source=wire.ENERGY_COUNTER,
                             power_field=wire.POWER_INSTANT, prev=(T0_MS - 100, TOP - 1),
                             columns={"t_ms": [T0_MS], "energy_mj": [TOP - 1], "power_mw": [1], "sm_clock_mhz": [1],
                                      "util_pct": [1], "temp_c": [1]})
    assert wire.parse(wire.GpuWindow, entry).energy_deltas_mj().tolist() == [0]
    entry[field] = [TOP] if field == "energy_mj" else TOP
    with pytest.raises(wire.WireError, match=f"{field}.*9223372036854775807"):
        wire.parse(wire.GpuWindow, entry)


def stream_counter(start_mj: int, step_mj: int, ticks: int) -> MemoryTransport:
    """An NVML GPU whose unsigned 64-bit counter rises ``step_mj`` every 100 ms, wrapping at 2**64."""
    nvml = FakeNvml([FakeGpu(UUID, energy_mj=start_mj)])
    clock = VirtualClock(T0_MS)
    transport = MemoryTransport()
    streamer = Streamer(NvmlBackend(None, nvml=nvml, environ={}), transport, run="r", token=TOKEN, node="n",
                        clock=clock, window_s=1.0)
    streamer.open()
    for k in range(ticks):
        clock.sleep_until(T0_MS + 100 * k)
        streamer.tick()
        nvml.gpus[0].energy_mj = (nvml.gpus[0].energy_mj + step_mj) % 2**64
    streamer.close()
    return transport


@pytest.mark.parametrize("start_mj", [TOP - 1_000_000, 2**64 - 1_000_000], ids=["passes-2**63", "wraps-at-2**64"])
def test_a_counter_passing_the_top_of_the_wire_or_of_nvml_is_sent_modulo_and_counted_exactly(start_mj: int) -> None:
    transport = stream_counter(start_mj, 65_000, 40)
    decoded = batches(transport.envelopes)  # every value on the wire is one the app accepts
    sent = np.concatenate([g.energy_mj for b in decoded for g in b.gpus])
    assert sent.max() < TOP and (np.diff(sent) < 0).sum() == 1  # it wrapped once, on the wire
    assert energy_by_gpu_mj(decoded) == {UUID: 39 * 65_000}


def test_the_stage_meter_counts_across_a_wraparound_too() -> None:
    nvml = FakeNvml([FakeGpu(UUID, energy_mj=2**64 - 20_000)])
    meter = EnergyMeter(NvmlBackend(None, nvml=nvml, environ={}), clock=VirtualClock(T0_MS))
    begin = meter.read()
    nvml.gpus[0].energy_mj = 30_000  # NVML wrapped
    assert meter.energy_j(begin, meter.read()) == pytest.approx(50.0)

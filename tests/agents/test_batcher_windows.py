"""The batcher: windows, sequence numbers, previous readings, splitting at the wire limits, round trip."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.agents.support import TOKEN, batches, energy_by_gpu_mj
from wattwise_agent import wire
from wattwise_agent.backends.base import GpuInfo
from wattwise_agent.backends.simulated import SimulatedBackend
from wattwise_agent.batcher import Batcher, batch_samples
from wattwise_agent.clock import VirtualClock
from wattwise_agent.sampler import Sample
from wattwise_agent.streamer import Streamer
from wattwise_agent.transport import MemoryTransport

T0_MS = 1_767_225_600_000  # a multiple of 5 s


def gpus(n: int) -> list[GpuInfo]:
    return [GpuInfo(index=i, uuid=f"GPU-{i}", name="g", energy_source="counter", power_field="instant")
            for i in range(n)]


def sample(t_ms: int, energy_mj: int) -> Sample:
    return Sample(t_ms=t_ms, energy_mj=energy_mj, power_mw=300_000, sm_clock_mhz=1980, util_pct=90, temp_c=60)


def feed(batcher: Batcher, n_gpus: int, seconds: float, rate_hz: float = 10, start: int = T0_MS) -> list[dict]:
    out = []
    for k in range(int(seconds * rate_hz)):
        t = start + round(k * 1000 / rate_hz)
        out += batcher.add_samples(t, [sample(t, 1000 * k + g) for g in range(n_gpus)])
    return out + batcher.flush()


def test_one_batch_per_window_with_consecutive_sequence_numbers() -> None:
    batcher = Batcher(run="r", stream="s", simulated=False, gpus=gpus(2), window_s=5)
    payloads = feed(batcher, 2, 30)
    assert [p["seq"] for p in payloads] == list(range(6))
    assert [(p["window_start_ms"] - T0_MS, p["window_end_ms"] - T0_MS) for p in payloads][:2] == [
        (0, 5000), (5000, 10_000)
    ]
    assert all(batch_samples(p) == 100 for p in payloads)  # 2 GPUs × 50 readings


def test_windows_are_aligned_to_unix_time_so_nodes_line_up() -> None:
    batcher = Batcher(run="r", stream="s", simulated=False, gpus=gpus(1), window_s=5)
    payloads = feed(batcher, 1, 12, start=T0_MS + 3_250)
    assert payloads[0]["window_start_ms"] == T0_MS and payloads[0]["gpus"][0]["t_ms"][0] == T0_MS + 3_250
    assert payloads[1]["window_start_ms"] == T0_MS + 5_000


def test_each_window_repeats_the_previous_reading_of_each_gpu() -> None:
    batcher = Batcher(run="r", stream="s", simulated=False, gpus=gpus(2), window_s=1)
    payloads = feed(batcher, 2, 3)
    assert payloads[0]["gpus"][0]["prev_t_ms"] is None and payloads[0]["gpus"][0]["prev_energy_mj"] is None
    for before, after in zip(payloads, payloads[1:]):
        assert len(before["gpus"]) == len(after["gpus"])
        for g_before, g_after in zip(before["gpus"], after["gpus"]):
            assert g_after["prev_t_ms"] == g_before["t_ms"][-1]
            assert g_after["prev_energy_mj"] == g_before["energy_mj"][-1]


def test_final_reading_at_a_window_end_closes_that_window() -> None:
    batcher = Batcher(run="r", stream="s", simulated=False, gpus=gpus(1), window_s=5)
    out = []
    for k in range(51):  # 0 .. 5000 ms inclusive
        t = T0_MS + 100 * k
        out += batcher.add_samples(t, [sample(t, k)], final=k == 50)
    out += batcher.flush()
    assert len(out) == 1
    assert out[0]["window_end_ms"] == T0_MS + 5000 and out[0]["gpus"][0]["t_ms"][-1] == T0_MS + 5000


def test_window_over_the_sample_limit_is_split_in_time_and_the_prev_chain_runs_through() -> None:
    batcher = Batcher(run="r", stream="s", simulated=False, gpus=gpus(2), window_s=5, max_samples=30)
    payloads = feed(batcher, 2, 5)  # 100 samples in one window
    assert len(payloads) >= 4 and all(batch_samples(p) <= 30 for p in payloads)
    assert [p["seq"] for p in payloads] == list(range(len(payloads)))
    decoded = [wire.decode_batch(p) for p in payloads]
    assert sum(b.samples for b in decoded) == 100
    assert energy_by_gpu(decoded) == {"GPU-0": 49_000, "GPU-1": 49_000}
    assert payloads[0]["window_start_ms"] == T0_MS
    assert all(a["window_end_ms"] == b["window_start_ms"] for a, b in zip(payloads, payloads[1:]))


def test_window_over_the_body_limit_is_split() -> None:
    batcher = Batcher(run="r", stream="s", simulated=False, gpus=gpus(4), window_s=5, max_body_bytes=6_000)
    payloads = feed(batcher, 4, 5)
    assert len(payloads) > 1
    assert all(len(json.dumps(p, separators=(",", ":"))) <= 6_000 for p in payloads)
    assert sum(batch_samples(p) for p in payloads) == 200


def test_more_gpus_than_one_batch_may_hold_are_split_into_groups() -> None:
    n = wire.MAX_GPUS_PER_BATCH + 6
    batcher = Batcher(run="r", stream="s", simulated=False, gpus=gpus(n), window_s=1)
    batcher.add_event({"t_ms": T0_MS + 50, "kind": "step_end", "step": 0})
    payloads = feed(batcher, n, 1)
    assert [len(p["gpus"]) for p in payloads] == [wire.MAX_GPUS_PER_BATCH, 6]
    assert [len(p["events"]) for p in payloads] == [1, 0]
    assert {g.uuid for p in payloads for g in wire.decode_batch(p).gpus} == {f"GPU-{i}" for i in range(n)}


def test_events_land_in_the_window_their_time_belongs_to() -> None:
    batcher = Batcher(run="r", stream="s", simulated=False, gpus=gpus(1), window_s=1)
    out = []
    for k in range(25):
        t = T0_MS + 100 * k
        if k in (3, 12, 21):
            out += batcher.add_event({"t_ms": t - 1, "kind": "step_end", "step": k})
        out += batcher.add_samples(t, [sample(t, k)])
    out += batcher.flush()
    assert [[e["step"] for e in p["events"]] for p in out] == [[3], [12], [21]]
    for p in out:
        wire.decode_batch(p)


def energy_by_gpu(decoded: list[wire.Batch]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for b in decoded:
        for g in b.gpus:
            totals[g.uuid] = totals.get(g.uuid, 0) + int(g.energy_deltas_mj().sum())
    return totals


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n_gpus=st.integers(1, 4),
    seconds=st.floats(0.5, 40),
    rate_hz=st.sampled_from([1.0, 4.0, 10.0, 20.0]),
    window_s=st.sampled_from([0.3, 1.0, 5.0, 7.5]),
    max_samples=st.integers(5, 2000),
    reset_at_s=st.none() | st.floats(0, 30),
)
def test_decode_batch_accepts_everything_the_agent_sends_and_windows_sum_to_ground_truth(
    seed: int, n_gpus: int, seconds: float, rate_hz: float, window_s: float, max_samples: int,
    reset_at_s: float | None,
) -> None:
    backend = SimulatedBackend(n_gpus, node="prop", seed=seed, reset_at_s=reset_at_s)
    transport = MemoryTransport()
    streamer = Streamer(backend, transport, run="r", token=TOKEN, node="prop", clock=VirtualClock(T0_MS + 1234),
                        rate_hz=rate_hz, window_s=window_s, batch_limits={"max_samples": max_samples})
    streamer.run(seconds)
    summary = streamer.close()
    decoded = batches(transport.envelopes)  # decode_batch raises on anything the app would reject
    assert [b.seq for b in decoded] == list(range(len(decoded)))
    assert all(b.samples <= max_samples for b in decoded)
    assert sum(b.samples for b in decoded) == summary.samples_sent == summary.samples_read
    counted = energy_by_gpu_mj(decoded)
    for uuid, joules in (summary.true_energy_j or {}).items():
        assert abs(counted[uuid] - joules * 1000) <= 2
    per_gpu_times: dict[str, list[int]] = {}
    for b in decoded:
        for g in b.gpus:
            per_gpu_times.setdefault(g.uuid, []).extend(g.t_ms.tolist())
    for times in per_gpu_times.values():
        assert np.all(np.diff(times) > 0)

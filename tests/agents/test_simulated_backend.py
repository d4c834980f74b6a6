"""The simulated backend: seeded, plausible, labelled, exact against its own ground truth, and a function of
wall-clock time, so independent processes simulating a node read the same GPUs."""

from __future__ import annotations

import numpy as np
import pytest

from tests.agents.support import TOKEN, batches, energy_by_gpu_mj, opened
from wattwise_agent import wire
from wattwise_agent.backends.base import Reading
from wattwise_agent.backends.simulated import SIMULATED_GPU_NAME, SimulatedBackend
from wattwise_agent.clock import VirtualClock
from wattwise_agent.streamer import Streamer
from wattwise_agent.transport import MemoryTransport

T0_MS = 1_767_225_600_000


def read_series(backend: SimulatedBackend, seconds: float, rate_hz: float = 10.0) -> dict[str, np.ndarray]:
    rows = [backend.read(T0_MS + round(k * 1000 / rate_hz)) for k in range(int(seconds * rate_hz) + 1)]
    return {
        name: np.array([[getattr(r, name) for r in row] for row in rows], dtype=float)
        for name in ("power_mw", "sm_clock_mhz", "util_pct", "temp_c")
    } | {"energy_mj": np.array([[present(r).energy_mj for r in row] for row in rows], dtype=np.int64)}


def present(reading: Reading | None) -> Reading:
    assert reading is not None
    return reading


def test_same_seed_and_node_give_identical_readings() -> None:
    a = read_series(SimulatedBackend(2, node="n1", seed=7), 30)
    b = read_series(SimulatedBackend(2, node="n1", seed=7), 30)
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def test_another_seed_or_node_gives_another_run() -> None:
    base = read_series(SimulatedBackend(1, node="n1", seed=7), 10)["power_mw"]
    assert not np.array_equal(base, read_series(SimulatedBackend(1, node="n1", seed=8), 10)["power_mw"])
    assert not np.array_equal(base, read_series(SimulatedBackend(1, node="n2", seed=7), 10)["power_mw"])


def test_counter_differences_match_ground_truth_within_one_mj() -> None:
    backend = SimulatedBackend(4, node="n", seed=3)
    series = read_series(backend, 120)["energy_mj"]
    truth = backend.ground_truth_energy_j()
    for gpu in backend.gpus:
        counted_mj = int(series[-1, gpu.index] - series[0, gpu.index])
        assert abs(counted_mj - truth[gpu.uuid] * 1000) <= 1
        assert truth[gpu.uuid] > 120 * 60  # 2 minutes above idle power


def test_power_clock_and_temperature_are_in_a_plausible_h100_range() -> None:
    backend = SimulatedBackend(8, node="n", seed=11)
    # A whole cycle of the job and a little more: steps, an evaluation, a checkpoint, and round again.
    series = read_series(backend, backend.cycle_ms / 1000 + 30, rate_hz=4)
    power_w = series["power_mw"] / 1000
    assert 65 <= power_w.min() <= 110  # idle with clocks parked, during the checkpoint
    assert 640 <= power_w.max() <= 700  # busy, at or near the 700 W board limit
    assert set(np.unique(series["sm_clock_mhz"])) <= set(range(345, 1981, 15)) | {345}
    assert series["sm_clock_mhz"].max() == 1980
    assert series["temp_c"].min() >= 20 and series["temp_c"].max() <= 90
    # Temperature follows the load slowly: it moves, but never jumps between samples, not even where
    # the cycle comes round again.
    assert np.ptp(series["temp_c"], axis=0).min() >= 2
    assert np.abs(np.diff(series["temp_c"], axis=0)).max() <= 1


def test_power_follows_utilisation_and_gpus_differ() -> None:
    series = read_series(SimulatedBackend(4, node="n", seed=5), 120)
    util, power = series["util_pct"].ravel(), series["power_mw"].ravel()
    assert np.corrcoef(util, power)[0, 1] > 0.7
    assert (util == 0).any() and (util >= 90).any()  # idle gaps and busy phases
    per_gpu = series["power_mw"].mean(axis=0)
    assert per_gpu.max() - per_gpu.min() > 1000  # per-GPU variation, in mW


def test_reset_at_happens_at_a_sample_instant_and_counts_stay_exact() -> None:
    backend = SimulatedBackend(2, node="n", seed=1, reset_at_s=20)
    series = read_series(backend, 40)["energy_mj"]
    assert backend.resets_ms == [T0_MS + 20_000]
    k = 200  # the reading at 20 s shows the old counter; the next one counts from zero
    assert (series[k + 1] < series[k]).all()
    assert (series[k + 1] < 200_000).all()  # one 100 ms interval at under 700 W
    truth = backend.ground_truth_energy_j()
    for gpu in backend.gpus:
        counted = wire.counter_steps_mj(series[:, gpu.index]).sum()  # the wire's rule: a reset counts from zero
        assert abs(counted - truth[gpu.uuid] * 1000) <= 2


def test_random_resets_are_detectable_and_totals_stay_exact_through_the_wire() -> None:
    backend = SimulatedBackend(2, node="n", seed=2, reset_probability=0.01)
    clock = VirtualClock(T0_MS)
    transport = MemoryTransport()
    streamer = Streamer(backend, transport, run="r", token=TOKEN, node="n", clock=clock)
    streamer.run(600)
    summary = streamer.close()
    assert len(backend.resets_ms) >= 2
    counted = energy_by_gpu_mj(batches(transport.envelopes))
    for uuid, joules in (summary.true_energy_j or {}).items():
        assert abs(counted[uuid] - joules * 1000) <= 1 + len(backend.resets_ms)


def test_gpu_without_counter_is_flagged_and_estimated_from_power() -> None:
    backend = SimulatedBackend(2, node="n", seed=4, without_counter=[1])
    assert [g.energy_source for g in backend.gpus] == ["counter", "power_integration"]
    reading = backend.read(T0_MS)[1]
    assert reading is not None and reading.energy_mj is None
    clock = VirtualClock(T0_MS)
    transport = MemoryTransport()
    streamer = Streamer(backend, transport, run="r", token=TOKEN, node="n", clock=clock)
    streamer.run(60)
    summary = streamer.close()
    counted = energy_by_gpu_mj(batches(transport.envelopes))
    truth = summary.true_energy_j or {}
    assert abs(counted["GPU-SIM-n-0"] - truth["GPU-SIM-n-0"] * 1000) <= 1
    # Sampling power at 10 Hz misses kernel-scale swings: close, not exact (hence the flag).
    assert counted["GPU-SIM-n-1"] == pytest.approx(truth["GPU-SIM-n-1"] * 1000, rel=0.05)


def test_simulated_gpus_are_labelled_simulated_everywhere() -> None:
    backend = SimulatedBackend(2, node="rack7", seed=0)
    assert [g.uuid for g in backend.gpus] == ["GPU-SIM-rack7-0", "GPU-SIM-rack7-1"]
    assert all(g.name == SIMULATED_GPU_NAME and "(simulated)" in g.name for g in backend.gpus)
    transport = MemoryTransport()
    streamer = Streamer(backend, transport, run="r", token=TOKEN, node="rack7", clock=VirtualClock(T0_MS))
    streamer.run(6)
    summary = streamer.close()
    payloads = [opened(e) for e in transport.envelopes]
    assert payloads[0]["simulated"] is True and payloads[0]["backend"] == "simulated"
    assert all(p["simulated"] is True for p in payloads if "seq" in p)
    assert summary.simulated and summary.exit_line()["simulated"] is True


def test_simulated_steps_are_marked_as_step_end_events() -> None:
    backend = SimulatedBackend(1, node="n", seed=0)
    transport = MemoryTransport()
    streamer = Streamer(backend, transport, run="r", token=TOKEN, node="n", clock=VirtualClock(T0_MS))
    streamer.run(60)
    streamer.close()
    steps = [e.fields["step"] for b in batches(transport.envelopes) for e in b.events if e.kind == "step_end"]
    assert steps == list(range(len(steps)))  # numbered from this stream's first reading
    assert 30 <= len(steps) <= 90  # ~0.7-1.3 s steps, and perhaps an evaluation and a checkpoint


def test_independent_backends_of_one_node_read_the_same_gpus_at_the_same_instant() -> None:
    # Three processes' views of one node: started at different times, reading different numbers of GPUs.
    early, late, wide = (SimulatedBackend(2, node="n", seed=9), SimulatedBackend(2, node="n", seed=9),
                         SimulatedBackend(4, node="n", seed=9))
    early.read(T0_MS - 3_600_000)
    late.read(T0_MS + 12_345)
    for t_ms in (T0_MS + 20_000, T0_MS + 20_100, T0_MS + 95_000):
        readings = [backend.read(t_ms) for backend in (early, late, wide)]
        assert readings[0] == readings[1] == readings[2][:2]


def test_counters_rise_through_cycles_and_match_ground_truth_within_one_mj() -> None:
    backend = SimulatedBackend(2, node="n", seed=5)
    series = read_series(backend, 2.5 * backend.cycle_ms / 1000, rate_hz=1)["energy_mj"]
    assert (np.diff(series, axis=0) > 0).all()  # never back, not even where a cycle comes round
    truth = backend.ground_truth_energy_j()
    for gpu in backend.gpus:
        assert abs(int(series[-1, gpu.index] - series[0, gpu.index]) - truth[gpu.uuid] * 1000) <= 1


def test_the_truth_between_any_two_instants_is_what_a_second_backend_reads_there() -> None:
    # What the tests of several processes on one node take as the truth for the time they covered together.
    streamed = SimulatedBackend(1, node="n", seed=4)
    for k in range(301):
        streamed.read(T0_MS + 1_000 + 100 * k)
    witness = SimulatedBackend(1, node="n", seed=4)
    first, last = witness.read(T0_MS + 1_000)[0], witness.read(T0_MS + 31_000)[0]
    assert first is not None and last is not None and first.energy_mj is not None and last.energy_mj is not None
    assert abs(last.energy_mj - first.energy_mj - streamed.ground_truth_energy_j()["GPU-SIM-n-0"] * 1000) <= 1


def test_a_backend_reading_one_gpu_of_the_node_reads_what_one_reading_them_all_reads_for_it() -> None:
    whole = read_series(SimulatedBackend(4, node="ddp-host", seed=5), 30)
    for index in range(4):
        one = SimulatedBackend(4, node="ddp-host", seed=5, select=[index])
        assert [g.uuid for g in one.gpus] == [f"GPU-SIM-ddp-host-{index}"] and one.gpus[0].index == index
        mine = read_series(one, 30)
        for name, series in whole.items():
            assert np.array_equal(mine[name][:, 0], series[:, index]), (index, name)
    # Node indices throughout: GPU 3 of the node is the one without a counter, whoever reads it.
    pair = SimulatedBackend(4, node="ddp-host", seed=5, without_counter=[3], select=[3, 1])
    assert [(g.index, g.energy_source) for g in pair.gpus] == [(3, "power_integration"), (1, "counter")]
    assert [r is not None and r.energy_mj is None for r in pair.read(T0_MS)] == [True, False]


def test_a_selection_must_name_distinct_gpus_of_the_node() -> None:
    for select in ([4], [], [1, 1], [-1]):
        with pytest.raises(ValueError, match="select must name distinct GPU indices of the node's 4"):
            SimulatedBackend(4, select=select)

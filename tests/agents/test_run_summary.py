"""The agent's own summary of a stream: the energy of the batches it sent, counted exactly as the app counts them,
available while it runs, and emissions from the yearly intensity of where it ran, offline."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from tests.agents.fake_rapl import FakeRapl
from tests.agents.support import TOKEN, batches, energy_by_gpu_mj
from wattwise_agent import grid_intensity
from wattwise_agent.backends.rapl import RaplBackend
from wattwise_agent.backends.simulated import SimulatedBackend
from wattwise_agent.clock import SteppedClock, VirtualClock
from wattwise_agent.streamer import Streamer
from wattwise_agent.torch_hooks import Tracker
from wattwise_agent.transport import MemoryTransport

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
NEW_YEAR_2022_MS = 1_640_995_200_000  # 2022-01-01T00:00:00Z


def streamed(backend: SimulatedBackend, start_ms: int, seconds: float, **options: object) -> tuple[Streamer, MemoryTransport]:
    transport = MemoryTransport()
    streamer = Streamer(backend, transport, run="r", token=TOKEN, node="n", clock=VirtualClock(start_ms),
                        **options)  # type: ignore[arg-type]
    streamer.run(seconds)
    return streamer, transport


def test_the_summary_is_the_counter_differences_sent_through_resets_and_power_integration() -> None:
    backend = SimulatedBackend(3, node="n", seed=2, reset_probability=0.01, without_counter=[2])
    streamer, transport = streamed(backend, T0_MS, 300, window_s=7)
    summary = streamer.close()
    assert len(backend.resets_ms) >= 1
    decoded = batches(transport.envelopes)
    # The app's own rule (GpuWindow.energy_deltas_mj), summed over the batches: equal, not merely close.
    assert summary.energy_j == {uuid: mj / 1000 for uuid, mj in energy_by_gpu_mj(decoded).items()}
    assert summary.total_energy_j == pytest.approx(sum(summary.energy_j.values()), rel=1e-15)
    assert summary.measured is not None and summary.measured.estimated  # GPU 2 has no counter
    assert summary.measured.samples == sum(b.samples for b in decoded) == summary.samples_sent
    first = min(int(g.t_ms[0]) for b in decoded for g in b.gpus)
    last = max(int(g.t_ms[-1]) for b in decoded for g in b.gpus)
    assert summary.duration_s == (last - first) / 1000 == 300.0
    assert summary.measured.components_j == {"gpu": summary.total_energy_j}
    # The simulator's own truth stays apart, for tests of the counting itself.
    assert summary.true_energy_j is not None and set(summary.true_energy_j) == set(summary.energy_j)


def test_cpu_and_dram_are_components_beside_the_gpus_and_count_in_the_total(tmp_path: Path) -> None:
    tree = FakeRapl(tmp_path / "powercap", packages=1, max_energy_range_uj=100_000_000)
    package, dram = tree.zone(0), tree.zone(0, "dram")
    clock = VirtualClock(T0_MS)
    transport = MemoryTransport()
    streamer = Streamer(SimulatedBackend(2, node="n"), transport, run="r", token=TOKEN, node="n", clock=clock,
                        node_energy=RaplBackend("n", root=tree.root))
    for k in range(101):  # 10 s at 10 Hz: 150 W package (wrapping), 20 W DRAM
        clock.sleep_until(T0_MS + 100 * k)
        if k:
            tree.add_uj(package, 15_000_000)
            tree.add_uj(dram, 2_000_000)
        streamer.tick()
    summary = streamer.close()
    assert summary.measured is not None
    assert set(summary.energy_j) == {"GPU-SIM-n-0", "GPU-SIM-n-1"}  # energy_j: the GPUs, as the app's "gpus"
    components = summary.measured.components_j
    assert components["cpu"] == 1500.0 and components["dram"] == 200.0
    assert components["gpu"] == pytest.approx(sum(summary.energy_j.values()), rel=1e-15)
    assert summary.total_energy_j == pytest.approx(sum(components.values()), rel=1e-15)
    assert summary.exit_line()["components_j"] == components
    counted = energy_by_gpu_mj(batches(transport.envelopes))  # every device the batches carry
    assert summary.measured.devices_energy_j == {uuid: mj / 1000 for uuid, mj in counted.items()}


def test_energy_so_far_counts_to_the_last_reading_and_ends_where_the_summary_does() -> None:
    backend = SimulatedBackend(2, node="n", seed=5)
    streamer, _ = streamed(backend, T0_MS, 12.3, window_s=5)  # 12.3 s: the last window is open
    so_far = streamer.energy_so_far()
    assert so_far.duration_s == 12.3 and so_far.samples == 2 * 124
    summary = streamer.close()
    assert summary.measured is not None
    assert so_far.energy_j == summary.energy_j and so_far.samples == summary.measured.samples


def test_energy_so_far_grows_reading_by_reading() -> None:
    backend = SimulatedBackend(1, node="n", seed=1)
    streamer = Streamer(backend, MemoryTransport(), run="r", token=TOKEN, node="n", clock=VirtualClock(T0_MS))
    clock = streamer.clock
    seen = []
    for k in range(40):
        clock.sleep_until(T0_MS + 100 * k)
        streamer.tick()
        seen.append(streamer.energy_so_far().total_energy_j)
    assert seen[0] == 0.0 and all(b > a for a, b in zip(seen, seen[1:]))
    streamer.close()


def test_steps_are_counted_from_the_markers_sent() -> None:
    clock = SteppedClock(T0_MS)
    with Tracker("r", backend="simulated", gpus=2, transport=MemoryTransport(), token=TOKEN, node="n",
                 clock=clock, rate_hz=10, window_s=1) as tracker:
        for step in range(25):
            clock.advance_by(200)
            tracker.step(step)
        assert tracker.energy_so_far() is not None
    summary = tracker.summary
    assert summary is not None and summary.steps == 25
    assert summary.energy_per_step_j == pytest.approx(summary.total_energy_j / 25, rel=1e-15)


def test_emissions_take_each_readings_year_across_new_year() -> None:
    backend = SimulatedBackend(2, node="n", seed=3)
    streamer, transport = streamed(backend, NEW_YEAR_2022_MS - 30_000, 60, zone="DE")
    summary = streamer.close()
    assert summary.measured is not None and summary.measured.emissions is not None
    years = summary.measured.emissions.years
    assert [y.year for y in years] == [2021, 2022]
    # Split by the year of the reading that ends each interval: 30 s of readings each side.
    decoded = batches(transport.envelopes)
    before = sum(int(d) for b in decoded for g in b.gpus
                 for t, d in zip(g.t_ms.tolist(), g.energy_deltas_mj().tolist()) if t < NEW_YEAR_2022_MS)
    assert years[0].energy_j == before / 1000
    assert sum(y.energy_j for y in years) == pytest.approx(summary.total_energy_j, rel=1e-15)
    table = grid_intensity.table()["zones"]["DE"]
    assert [y.intensity.g_per_kwh for y in years] == [table["2021"], table["2022"]]
    expected = sum(y.energy_j / 3_600_000 * table[str(y.year)] for y in years)
    assert summary.emissions_g == pytest.approx(expected, rel=1e-15)
    assert summary.exit_line()["emissions_g"] == summary.emissions_g


def test_a_region_counts_as_its_zone_and_the_zone_wins_over_the_region() -> None:
    by_region = grid_intensity.run_place(None, "aws:eu-north-1")
    assert by_region is not None and by_region.place.zone == "SE-SE3"
    both = grid_intensity.run_place("DE", "aws:eu-north-1")
    assert both is not None and both.place.zone == "DE"
    assert grid_intensity.run_place(None, None) is None


def test_an_unknown_region_counts_as_the_world_average_and_says_so() -> None:
    place = grid_intensity.run_place(None, "aws:mars-central-1")
    assert place is not None
    figures = grid_intensity.emissions(place, {2025: 3_600_000.0})
    assert figures.years[0].intensity.step == "world"
    assert figures.emissions_g == grid_intensity.table()["world"]["g_per_kwh"]
    assert "unknown cloud region 'aws:mars-central-1'" in figures.note and "world average" in figures.note


def test_a_zone_figure_is_the_years_else_the_nearest_years() -> None:
    de = grid_intensity.table()["zones"]["DE"]
    place = grid_intensity.locate("de")
    assert grid_intensity.yearly_intensity(place, 2023).g_per_kwh == de["2023"]
    assert grid_intensity.yearly_intensity(place, 2030).data_year == 2025
    assert grid_intensity.yearly_intensity(place, 2010).data_year == 2021
    enclosed = grid_intensity.yearly_intensity(grid_intensity.locate("GB-CI-13"), 2024)
    assert (enclosed.key, enclosed.step) == ("GB", "zone_yearly")


def test_without_a_zone_or_region_there_are_no_emissions() -> None:
    streamer, _ = streamed(SimulatedBackend(1, node="n"), T0_MS, 5)
    summary = streamer.close()
    assert summary.emissions_g is None and "emissions_g" not in summary.exit_line()


def test_a_tracker_with_nowhere_to_send_records_a_run_file_and_summarises_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("WATTWISE_URL", "WATTWISE_BROKER_URL", "WATTWISE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WATTWISE_RUNS_DIR", str(tmp_path / "runs"))
    caplog.set_level(logging.WARNING, logger="wattwise_agent")
    with Tracker("offline run", backend="simulated", gpus=2, node="laptop", rate_hz=50, window_s=0.1,
                 region="gcp:europe-west1") as tracker:
        for step in range(5):
            time.sleep(0.02)
            tracker.step(step)
        during = tracker.energy_so_far()
    summary = tracker.summary
    assert tracker.error is None and summary is not None and during is not None
    assert tracker.run_file == tmp_path / "runs" / f"offline_run-{summary.stream}.jsonl"
    said = [r.getMessage() for r in caplog.records if "recorded in" in r.getMessage()]
    assert len(said) == 1 and f"wattwise-agent upload {tracker.run_file}" in said[0]
    assert summary.batches_sent == summary.batches_made > 0 and summary.spooled == 0
    assert summary.steps == 5 and summary.emissions_g is not None and summary.emissions_g > 0
    assert 0 < during.total_energy_j <= summary.total_energy_j
    lines = tracker.run_file.read_text().splitlines()
    kinds = [json.loads(line).get("kind") for line in lines[1:]]
    assert kinds[0] == "open_run" and kinds[-1] == "close_run" and kinds.count("batch") == summary.batches_made
    assert summary.exit_line()["out"] == str(tracker.run_file)


def test_a_tracker_that_sends_needs_a_token_and_out_keeps_a_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WATTWISE_TOKEN", raising=False)
    monkeypatch.setenv("WATTWISE_URL", "http://127.0.0.1:9")
    with pytest.raises(ValueError, match="no node token"), Tracker("r", backend="simulated"):
        pass
    transport = MemoryTransport()
    out = tmp_path / "copy.jsonl"
    with Tracker("r", backend="simulated", transport=transport, token=TOKEN, node="n", rate_hz=50, out=out):
        time.sleep(0.05)
    kept = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    assert kept == transport.envelopes  # signed, exactly as sent

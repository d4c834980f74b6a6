"""CPU package and DRAM energy from RAPL, on a fake powercap tree: what the app receives must add up."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agents.fake_rapl import FakeRapl, run_unprivileged
from tests.agents.support import TOKEN, RedisServer, batches, energy_by_gpu_mj, opened, queued_envelopes
from tests.agents.test_stream_cli import agent
from wattwise_agent import wire
from wattwise_agent.backends.rapl import RaplBackend, RaplUnavailable, node_energy, open_rapl
from wattwise_agent.backends.simulated import SimulatedBackend
from wattwise_agent.clock import VirtualClock
from wattwise_agent.streamer import Streamer
from wattwise_agent.transport import MemoryTransport

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PACKAGE = "RAPL-n-package-0"
DRAM = "RAPL-n-package-0-dram"


def stream(rapl: RaplBackend | None, ticks: int, between: Callable[[int], None] = lambda k: None,
           window_s: float = 1.0) -> MemoryTransport:
    """Simulated GPUs with ``rapl`` beside them, a reading every 100 ms; ``between(k)`` runs before tick k."""
    clock = VirtualClock(T0_MS)
    transport = MemoryTransport()
    streamer = Streamer(SimulatedBackend(1, node="n"), transport, run="r", token=TOKEN, node="n", clock=clock,
                        window_s=window_s, node_energy=rapl)
    streamer.open()
    for k in range(ticks):
        clock.sleep_until(T0_MS + 100 * k)
        between(k)
        streamer.tick()
    streamer.close()
    return transport


def test_package_and_dram_travel_as_cpu_and_dram_components_with_exact_energy(tmp_path: Path) -> None:
    tree = FakeRapl(tmp_path / "powercap")
    package, dram = tree.zone(0), tree.zone(0, "dram")

    def use(k: int) -> None:
        if k:  # 30 intervals of 100 ms: 180 W package, 12.5 W DRAM
            tree.add_uj(package, 18_000_000)
            tree.add_uj(dram, 1_250_000)

    transport = stream(RaplBackend("n", root=tree.root), 31, use)
    decoded = batches(transport.envelopes)
    energy = energy_by_gpu_mj(decoded)
    assert energy[PACKAGE] == 30 * 18_000 and energy[DRAM] == 30 * 1_250
    components = {g.uuid: g.component for b in decoded for g in b.gpus}
    assert components == {"GPU-SIM-n-0": "gpu", PACKAGE: "cpu", DRAM: "dram"}
    open_run = opened(transport.envelopes[0])
    assert [(g["uuid"], g["component"]) for g in open_run["gpus"]] == [
        ("GPU-SIM-n-0", "gpu"), (PACKAGE, "cpu"), (DRAM, "dram")]
    # A GPU's entry says nothing of components, as agents before them sent it.
    entry = next(g for g in opened(transport.envelopes[1])["gpus"] if g["uuid"] == "GPU-SIM-n-0")
    assert "component" not in entry


def test_power_is_the_mean_over_the_interval_before_each_reading(tmp_path: Path) -> None:
    tree = FakeRapl(tmp_path / "powercap")
    package = tree.zone(0)
    transport = stream(RaplBackend("n", root=tree.root), 11, lambda k: tree.add_uj(package, 20_000_000 if k else 0))
    windows = [g for b in batches(transport.envelopes) for g in b.gpus if g.uuid == PACKAGE]
    power_mw = [int(p) for w in windows for p in w.power_mw]
    assert power_mw[1:] == [200_000] * 10  # 20 J per 100 ms
    assert all(int(c) == 0 for w in windows for column in (w.sm_clock_mhz, w.util_pct, w.temp_c) for c in column)
    assert {w.power_field for w in windows} == {"average"}


def test_counter_wrapping_at_max_energy_range_counts_the_energy_across_the_wrap(tmp_path: Path) -> None:
    tree = FakeRapl(tmp_path / "powercap", max_energy_range_uj=1_000_000_000, start_uj=999_000_000)
    package, dram = tree.zone(0), tree.zone(0, "dram")

    def use(k: int) -> None:
        if k:  # 700 J over 20 intervals: the package counter (range 1 kJ, 999 J at start) wraps
            tree.add_uj(package, 35_000_000)
            tree.add_uj(dram, 35_000_000)

    transport = stream(RaplBackend("n", root=tree.root), 21, use)
    assert tree.energy_uj(package) == (999_000_000 + 700_000_000) % 1_000_000_000  # it did wrap
    energy = energy_by_gpu_mj(batches(transport.envelopes))
    assert energy[PACKAGE] == energy[DRAM] == 700_000
    # What travels only goes up: the agent unwrapped it.
    readings = [int(v) for b in batches(transport.envelopes) for g in b.gpus if g.uuid == PACKAGE for v in g.energy_mj]
    assert readings == sorted(readings)


def test_several_wraps_of_a_small_range_each_count_whole(tmp_path: Path) -> None:
    tree = FakeRapl(tmp_path / "powercap", max_energy_range_uj=50_000_000, start_uj=0, dram=False)
    package = tree.zone(0)
    transport = stream(RaplBackend("n", root=tree.root), 41, lambda k: tree.add_uj(package, 30_000_000 if k else 0))
    assert energy_by_gpu_mj(batches(transport.envelopes))[PACKAGE] == 40 * 30_000  # 24 wraps of 50 J


def test_microjoules_below_a_millijoule_are_kept_not_rounded_away(tmp_path: Path) -> None:
    tree = FakeRapl(tmp_path / "powercap", start_uj=0, dram=False)
    package = tree.zone(0)
    # 700 µJ per reading: each step alone is under 1 mJ; 300 of them are 210 mJ.
    transport = stream(RaplBackend("n", root=tree.root), 301, lambda k: tree.add_uj(package, 700 if k else 0))
    assert energy_by_gpu_mj(batches(transport.envelopes))[PACKAGE] == 210


def test_core_uncore_and_psys_are_not_read_and_linked_subzones_count_once(tmp_path: Path) -> None:
    tree = FakeRapl(tmp_path / "powercap", packages=2, psys=True)
    rapl = RaplBackend("n", root=tree.root)
    assert [(g.uuid, g.component, g.index) for g in rapl.gpus] == [
        ("RAPL-n-package-0", "cpu", 0), ("RAPL-n-package-0-dram", "dram", 0),
        ("RAPL-n-package-1", "cpu", 1), ("RAPL-n-package-1-dram", "dram", 1),
    ]
    assert [g.name for g in rapl.gpus[:2]] == ["CPU package-0 (RAPL)", "DRAM package-0 (RAPL)"]


def test_a_read_that_fails_mid_run_is_skipped_and_the_next_difference_covers_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = FakeRapl(tmp_path / "powercap", dram=False)
    package = tree.zone(0)
    counter = package / "energy_uj"
    saved: list[str] = []

    def use(k: int) -> None:
        if k:
            if saved:
                counter.write_text(saved.pop())  # back, having counted on meanwhile
            tree.add_uj(package, 5_000_000)
            if k in (4, 5):
                saved.append(counter.read_text())
                tree.remove(package)

    with caplog.at_level(logging.WARNING):
        transport = stream(RaplBackend("n", root=tree.root), 11, use)
    assert energy_by_gpu_mj(batches(transport.envelopes))[PACKAGE] == 10 * 5_000
    assert len([r for r in caplog.records if "reading skipped" in r.getMessage()]) == 1


def test_unreadable_counters_are_said_once_with_the_fix_and_the_gpus_stream_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tree = FakeRapl(tmp_path / "powercap")
    tree.deny(tree.zone(0))
    tree.deny(tree.zone(0, "dram"))
    run_unprivileged(monkeypatch)
    with caplog.at_level(logging.WARNING):
        rapl = open_rapl("n", root=tree.root)
    assert rapl is None
    [line] = [r.getMessage() for r in caplog.records]
    assert "permission denied" in line and "CVE-2020-8694" in line
    assert f"sudo chmod a+r {tree.root}/intel-rapl:*/energy_uj" in line and "--no-cpu" in line
    transport = stream(rapl, 11)
    assert set(energy_by_gpu_mj(batches(transport.envelopes))) == {"GPU-SIM-n-0"}


def test_one_unreadable_zone_is_skipped_and_the_others_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tree = FakeRapl(tmp_path / "powercap")
    tree.deny(tree.zone(0, "dram"))
    run_unprivileged(monkeypatch)
    with caplog.at_level(logging.WARNING):
        rapl = RaplBackend("n", root=tree.root)
    assert [g.uuid for g in rapl.gpus] == [PACKAGE]
    assert len(caplog.records) == 1 and "skipped" in caplog.records[0].getMessage()


def test_no_powercap_tree_is_said_once_and_the_gpus_stream_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert open_rapl("n", root=tmp_path / "missing") is None
    [line] = [r.getMessage() for r in caplog.records]
    assert "no RAPL energy counters" in line and "streaming the GPUs only" in line
    (tmp_path / "empty").mkdir()
    with pytest.raises(RaplUnavailable, match="no intel-rapl package zone"):
        RaplBackend("n", root=tmp_path / "empty")


def test_rapl_is_read_beside_real_gpus_by_default_and_beside_the_simulator_only_when_asked(tmp_path: Path) -> None:
    tree = FakeRapl(tmp_path / "powercap")
    assert node_energy("n", cpu=None, simulated=False, root=tree.root) is not None
    assert node_energy("n", cpu=None, simulated=True, root=tree.root) is None
    assert node_energy("n", cpu=True, simulated=True, root=tree.root) is not None
    assert node_energy("n", cpu=False, simulated=False, root=tree.root) is None


def test_an_entry_without_a_component_is_a_gpu_and_an_unknown_one_is_refused() -> None:
    base = {"uuid": "X", "index": 0, "energy_source": "counter", "t_ms": [1], "energy_mj": [1], "power_mw": [1],
            "sm_clock_mhz": [0], "util_pct": [0], "temp_c": [0]}
    assert wire.parse(wire.GpuWindow, base).component == "gpu"
    assert wire.parse(wire.GpuWindow, {**base, "component": "dram"}).component == "dram"
    with pytest.raises(wire.WireError, match=r"component.*'gpu', 'cpu' or 'dram'"):
        wire.parse(wire.GpuWindow, {**base, "component": "fan"})


def test_the_cli_streams_rapl_beside_the_simulator_when_asked(redis_server: RedisServer, tmp_path: Path) -> None:
    tree = FakeRapl(tmp_path / "powercap")
    base = ["stream", "--backend", "simulated", "--run", "t", "--duration", "2s", "--start", "2026-01-01T00:00:00Z",
            "--fast", "--broker", redis_server.url, "--node", "n", "--spool-dir", str(tmp_path / "spool"), "--quiet"]
    plain = agent(*base)
    assert plain.returncode == 0, plain.stderr
    with_cpu = agent(*base, "--cpu", "--rapl-root", str(tree.root))
    assert with_cpu.returncode == 0, with_cpu.stderr
    first, second = (set(energy_by_gpu_mj(batches(part))) for part in _streams(queued_envelopes(redis_server)))
    assert first == {"GPU-SIM-n-0"}
    assert second == {"GPU-SIM-n-0", PACKAGE, DRAM}


def _streams(envelopes: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The envelopes of each stream, in the order the streams opened."""
    out: list[list[dict[str, Any]]] = []
    for envelope in envelopes:
        if envelope["kind"] == "open_run":
            out.append([])
        out[-1].append(envelope)
    return out

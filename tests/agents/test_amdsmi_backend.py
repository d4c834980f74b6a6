"""AMD GPUs through a scripted amdsmi at the hardware edge: what the app receives must add up."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import pytest

from tests.agents.fake_amdsmi import (
    NA,
    STATUS_DRIVER_NOT_LOADED,
    STATUS_NO_PERM,
    FakeAmdGpu,
    FakeAmdSmi,
)
from tests.agents.support import TOKEN, batches, energy_by_gpu_mj
from wattwise_agent import cli
from wattwise_agent.backends.amdsmi import AmdSmiBackend, load_amdsmi
from wattwise_agent.backends.base import BackendUnavailable
from wattwise_agent.clock import VirtualClock
from wattwise_agent.streamer import Streamer
from wattwise_agent.transport import MemoryTransport

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def uuid(n: int) -> str:
    return f"{n:08x}-0000-1000-8000-0000000000a{n}"


def stream(smi: FakeAmdSmi, ticks: int, between: Callable[[int], None] = lambda k: None,
           environ: dict[str, str] | None = None, gpus: list[str] | None = None) -> tuple[MemoryTransport, AmdSmiBackend]:
    backend = AmdSmiBackend(gpus, amdsmi=smi, environ=environ or {})
    clock = VirtualClock(T0_MS)
    transport = MemoryTransport()
    streamer = Streamer(backend, transport, run="r", token=TOKEN, node="n", clock=clock, window_s=1.0)
    streamer.open()
    for k in range(ticks):
        clock.sleep_until(T0_MS + 100 * k)
        between(k)
        streamer.tick()
    streamer.close()
    backend.close()
    return transport, backend


def test_energy_is_the_accumulator_difference_times_its_resolution() -> None:
    gpu = FakeAmdGpu(uuid(0), resolution_uj=15.625)  # exact in binary: ticks × 15.625 µJ
    transport, backend = stream(FakeAmdSmi([gpu]), 31, lambda k: gpu.use_joules(75.0) if k else None)
    assert energy_by_gpu_mj(batches(transport.envelopes)) == {uuid(0): 30 * 75_000}
    info = backend.gpus[0]
    assert (info.name, info.energy_source, info.power_field, info.component) == (
        "AMD Instinct MI300X", "counter", "instant", "gpu")
    window = batches(transport.envelopes)[0].gpus[0]
    assert (int(window.power_mw[0]), int(window.sm_clock_mhz[0]), int(window.util_pct[0]), int(window.temp_c[0])) == (
        750_000, 2100, 98, 71)


def test_a_32_bit_accumulator_wrapping_counts_the_energy_across_the_wrap() -> None:
    # 2^32 ticks of 15.625 µJ are 67.1 kJ; start 10 kJ below the top and use 30 kJ.
    gpu = FakeAmdGpu(uuid(0), resolution_uj=15.625, accumulator_width_bits=32, accumulator=2**32 - 640_000_000)
    transport, _ = stream(FakeAmdSmi([gpu]), 31, lambda k: gpu.use_joules(1_000.0) if k else None)
    assert gpu.accumulator < 2**31  # it did wrap
    assert energy_by_gpu_mj(batches(transport.envelopes)) == {uuid(0): 30 * 1_000_000}
    readings = [int(v) for b in batches(transport.envelopes) for g in b.gpus for v in g.energy_mj]
    assert readings == sorted(readings)  # unwrapped by the agent


def test_fractional_resolution_loses_no_remainder_over_many_readings() -> None:
    gpu = FakeAmdGpu(uuid(0), resolution_uj=15.3, accumulator=0)
    # 40 ticks a reading (612 µJ, under a millijoule each) for 200 readings: 8000 ticks = 122.4 mJ.
    transport, _ = stream(FakeAmdSmi([gpu]), 201, lambda k: setattr(gpu, "accumulator", gpu.accumulator + 40 * (k > 0)))
    assert energy_by_gpu_mj(batches(transport.envelopes)) == {uuid(0): 122}


def test_older_bindings_name_the_accumulator_power() -> None:
    gpu = FakeAmdGpu(uuid(0), resolution_uj=15.625, accumulator_key="power")
    transport, _ = stream(FakeAmdSmi([gpu]), 11, lambda k: gpu.use_joules(50.0) if k else None)
    assert energy_by_gpu_mj(batches(transport.envelopes)) == {uuid(0): 10 * 50_000}


def test_a_64_bit_accumulator_stepping_back_was_reset_and_counts_the_new_value_from_zero() -> None:
    gpu = FakeAmdGpu(uuid(0), resolution_uj=15.625, accumulator=2**40)

    def use(k: int) -> None:
        if k == 3:
            gpu.accumulator = 64_000  # the driver reloaded: 1 J since
        elif k:
            gpu.use_joules(10.0)

    transport, _ = stream(FakeAmdSmi([gpu]), 6, use)
    assert energy_by_gpu_mj(batches(transport.envelopes)) == {uuid(0): 4 * 10_000 + 1_000}


def test_gpu_without_the_accumulator_integrates_power_flagged_as_estimated(caplog: pytest.LogCaptureFixture) -> None:
    gpu = FakeAmdGpu(uuid(0), energy_supported=False, current_power_w=NA, average_power_w=200)
    with caplog.at_level(logging.WARNING):
        transport, backend = stream(FakeAmdSmi([gpu]), 11)  # 1 s at 200 W
    assert (backend.gpus[0].energy_source, backend.gpus[0].power_field) == ("power_integration", "average")
    assert energy_by_gpu_mj(batches(transport.envelopes)) == {uuid(0): 200_000}
    assert any("no energy accumulator" in r.getMessage() and "not supported" in r.getMessage()
               for r in caplog.records)


def test_a_failed_read_is_skipped_once_said_and_the_next_difference_covers_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gpu = FakeAmdGpu(uuid(0), resolution_uj=15.625)

    def use(k: int) -> None:
        if k:
            gpu.use_joules(20.0)
        if k in (4, 5):
            gpu.fail_next_reads = 1

    with caplog.at_level(logging.WARNING):
        transport, _ = stream(FakeAmdSmi([gpu]), 11, use)
    assert energy_by_gpu_mj(batches(transport.envelopes)) == {uuid(0): 10 * 20_000}
    assert len([r for r in caplog.records if "reading skipped" in r.getMessage()]) == 1


def test_what_a_gpu_cannot_say_is_sent_as_zero_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    gpu = FakeAmdGpu(uuid(0), hotspot_c=NA, gfx_activity_pct=NA)
    with caplog.at_level(logging.WARNING):
        transport, _ = stream(FakeAmdSmi([gpu]), 11)
    windows = [g for b in batches(transport.envelopes) for g in b.gpus]
    assert {int(v) for w in windows for v in w.temp_c} == {0} and {int(v) for w in windows for v in w.util_pct} == {0}
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "temperature unavailable" in m]) == 1
    assert len([m for m in messages if "GFX activity unavailable" in m]) == 1


def test_only_the_visible_gpus_are_read() -> None:
    smi = FakeAmdSmi([FakeAmdGpu(uuid(n)) for n in range(4)])
    assert [g.uuid for g in AmdSmiBackend(amdsmi=smi, environ={"ROCR_VISIBLE_DEVICES": "2,0"}).gpus] == [uuid(2), uuid(0)]
    assert [g.uuid for g in AmdSmiBackend(amdsmi=smi, environ={"HIP_VISIBLE_DEVICES": uuid(3)}).gpus] == [uuid(3)]
    assert [g.uuid for g in AmdSmiBackend(["1"], amdsmi=smi, environ={"ROCR_VISIBLE_DEVICES": "2"}).gpus] == [uuid(1)]
    with pytest.raises(BackendUnavailable, match="--gpus entry '7' matches no AMD GPU"):
        AmdSmiBackend(["7"], amdsmi=smi, environ={})


def test_amdsmi_errors_at_start_say_what_to_do() -> None:
    with pytest.raises(BackendUnavailable, match=r"the amdgpu driver is not loaded.*no AMD GPU driver"):
        AmdSmiBackend(amdsmi=FakeAmdSmi([], init_error=STATUS_DRIVER_NOT_LOADED), environ={})
    with pytest.raises(BackendUnavailable, match="render and video groups"):
        AmdSmiBackend(amdsmi=FakeAmdSmi([], init_error=STATUS_NO_PERM), environ={})
    with pytest.raises(BackendUnavailable, match="sees no AMD GPU"):
        AmdSmiBackend(amdsmi=FakeAmdSmi([]), environ={})
    with pytest.raises(BackendUnavailable, match="every power field is N/A"):
        AmdSmiBackend(amdsmi=FakeAmdSmi([FakeAmdGpu(uuid(0), current_power_w=NA)]), environ={})


def test_without_the_amdsmi_package_the_backend_is_unavailable_and_the_cli_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # import amdsmi raises ImportError
    with pytest.raises(BackendUnavailable, match="amdsmi Python package is not installed"):
        load_amdsmi()
    assert cli.main(["probe", "--backend", "amdsmi"]) == cli.EXIT_UNAVAILABLE
    assert "amdsmi Python package is not installed" in capsys.readouterr().err


def test_probe_lists_the_amd_gpus_and_their_counters(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", FakeAmdSmi([FakeAmdGpu(uuid(0))]))
    assert cli.main(["probe", "--backend", "amdsmi", "--json"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert uuid(0) in out and '"energy_counter": true' in out

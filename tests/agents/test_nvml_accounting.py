"""Energy accounting at the agent edge, on a scripted pynvml: what the app receives must add up."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import pytest

from tests.agents.fake_nvml import FakeGpu, FakeNvml
from tests.agents.support import TOKEN, batches, energy_by_gpu_mj, opened
from wattwise_agent.backends.base import BackendUnavailable
from wattwise_agent.backends.nvml import NvmlBackend, probe
from wattwise_agent.clock import VirtualClock
from wattwise_agent.streamer import Streamer
from wattwise_agent.transport import MemoryTransport

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def uuid(n: int) -> str:
    return f"GPU-{n:08x}-1111-2222-3333-444455556666"


def stream(nvml: FakeNvml, steps: Sequence[Mapping[int, int]] | int, *, environ: dict[str, str] | None = None,
           gpus: list[str] | None = None, window_s: float = 1.0) -> tuple[MemoryTransport, NvmlBackend]:
    """Tick every 100 ms; before each tick, apply the step's {gpu position: counter delta in mJ}."""
    backend = NvmlBackend(gpus, nvml=nvml, environ=environ or {})
    clock = VirtualClock(T0_MS)
    transport = MemoryTransport()
    streamer = Streamer(backend, transport, run="r", token=TOKEN, node="n", clock=clock, window_s=window_s)
    streamer.open()
    plan: Sequence[Mapping[int, int]] = [{} for _ in range(steps)] if isinstance(steps, int) else steps
    for k, deltas in enumerate(plan):
        clock.sleep_until(T0_MS + 100 * k)
        for position, delta in deltas.items():
            nvml.gpus[position].energy_mj += delta
        streamer.tick()
    streamer.close()
    return transport, backend


def test_energy_is_the_counter_difference_between_first_and_last_reading() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=7_000_000_000)])
    transport, _ = stream(nvml, [{}, *[{0: 65_000}] * 30])  # 3 s over several 1 s windows
    decoded = batches(transport.envelopes)
    assert len(decoded) >= 3
    assert energy_by_gpu_mj(decoded) == {uuid(0): 30 * 65_000}
    # The raw counter travels as read, never rebased.
    assert decoded[0].gpus[0].energy_mj[0] == 7_000_000_000


def test_counter_reset_counts_new_value_from_zero() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=9_000_000_000)])
    plan: list[dict[int, int]] = [{}, {0: 50_000}, {0: 50_000}, {0: -9_000_100_000 + 30_000}, {0: 50_000}]
    transport, _ = stream(nvml, plan)
    # 50 + 50 J, then the driver reloaded (counter back near zero, at 30 J), then 50 J more.
    assert energy_by_gpu_mj(batches(transport.envelopes)) == {uuid(0): 50_000 + 50_000 + 30_000 + 50_000}


def test_gpu_without_counter_falls_back_to_power_integration_flagged_as_estimated() -> None:
    pascal = FakeGpu(uuid(0), name="Tesla P100", arch=4, power_mw=200_000, instant_power=False)
    nvml = FakeNvml([pascal])
    transport, backend = stream(nvml, 11)  # 11 readings, 100 ms apart: 1 s at 200 W
    assert backend.gpus[0].energy_source == "power_integration"
    assert backend.gpus[0].power_field == "average"
    open_run = opened(transport.envelopes[0])
    assert open_run["gpus"][0]["energy_source"] == "power_integration"
    decoded = batches(transport.envelopes)
    assert all(g.energy_source == "power_integration" for b in decoded for g in b.gpus)
    assert energy_by_gpu_mj(decoded) == {uuid(0): 200_000}  # 200 W × 1 s = 200 J


def test_counter_call_failing_at_start_falls_back_to_power_integration() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), counter_works=False, power_mw=100_000)])
    transport, backend = stream(nvml, 6)
    assert backend.gpus[0].energy_source == "power_integration"
    assert energy_by_gpu_mj(batches(transport.envelopes)) == {uuid(0): 50_000}


def test_power_integration_is_a_trapezoid_over_changing_power() -> None:
    gpu = FakeGpu(uuid(0), arch=4, power_mw=100_000)
    nvml = FakeNvml([gpu])
    backend = NvmlBackend(nvml=nvml, environ={})
    clock = VirtualClock(T0_MS)
    transport = MemoryTransport()
    streamer = Streamer(backend, transport, run="r", token=TOKEN, node="n", clock=clock)
    for k, power_w in enumerate([100, 300, 300, 100]):
        gpu.power_mw = power_w * 1000
        clock.sleep_until(T0_MS + 500 * k)
        streamer.tick()
    streamer.close()
    # (100+300)/2·0.5 + 300·0.5 + (300+100)/2·0.5 = 100 + 150 + 100 J
    assert energy_by_gpu_mj(batches(transport.envelopes)) == {uuid(0): 350_000}


def test_instant_power_field_is_used_when_the_driver_has_it() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), instant_power=True), FakeGpu(uuid(1), instant_power=False)])
    backend = NvmlBackend(nvml=nvml, environ={})
    assert [g.power_field for g in backend.gpus] == ["instant", "average"]
    # Counter and instant power come from one field-values call per GPU per tick.
    before = nvml.gpus[0].field_calls
    backend.read(0)
    assert nvml.gpus[0].field_calls == before + 1


def test_only_gpus_in_cuda_visible_devices_are_counted_by_index() -> None:
    nvml = FakeNvml([FakeGpu(uuid(i)) for i in range(4)])
    transport, backend = stream(nvml, [{}, *[{0: 1, 1: 10, 2: 100, 3: 1000}] * 5],
                                environ={"CUDA_VISIBLE_DEVICES": "1,3"})
    assert [g.uuid for g in backend.gpus] == [uuid(1), uuid(3)]
    assert energy_by_gpu_mj(batches(transport.envelopes)) == {uuid(1): 50, uuid(3): 5000}
    assert [g["uuid"] for g in opened(transport.envelopes[0])["gpus"]] == [uuid(1), uuid(3)]


def test_only_gpus_in_cuda_visible_devices_are_counted_by_uuid_and_prefix() -> None:
    nvml = FakeNvml([FakeGpu(uuid(i)) for i in range(4)])
    visible = f"{uuid(2)},{uuid(0)[:12]}"  # CUDA accepts unique UUID prefixes
    transport, backend = stream(nvml, [{}, *[{0: 1, 1: 10, 2: 100, 3: 1000}] * 2],
                                environ={"CUDA_VISIBLE_DEVICES": visible})
    assert [g.uuid for g in backend.gpus] == [uuid(2), uuid(0)]
    assert energy_by_gpu_mj(batches(transport.envelopes)) == {uuid(2): 200, uuid(0): 2}


def test_explicit_gpu_list_overrides_cuda_visible_devices() -> None:
    nvml = FakeNvml([FakeGpu(uuid(i)) for i in range(3)])
    backend = NvmlBackend(["2"], nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert [g.uuid for g in backend.gpus] == [uuid(2)]
    with pytest.raises(BackendUnavailable, match="matches no GPU"):
        NvmlBackend(["7"], nvml=nvml, environ={})


def test_like_cuda_an_unknown_visible_device_ends_the_list() -> None:
    nvml = FakeNvml([FakeGpu(uuid(i)) for i in range(3)])
    backend = NvmlBackend(nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": "2,9,0"})
    assert [g.uuid for g in backend.gpus] == [uuid(2)]


def test_empty_cuda_visible_devices_means_no_gpu_is_owned() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0))])
    with pytest.raises(BackendUnavailable, match="no GPU selected"):
        NvmlBackend(nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": ""})


def test_mig_slices_are_never_summed_the_parent_gpu_is_reported_once_flagged() -> None:
    parent = FakeGpu(uuid(0), mig_mode=1, mig_slices=["MIG-aaaa-1", "MIG-aaaa-2"])
    nvml = FakeNvml([parent, FakeGpu(uuid(1))])
    transport, backend = stream(nvml, [{}, *[{0: 100, 1: 7}] * 4],
                                environ={"CUDA_VISIBLE_DEVICES": "MIG-aaaa-1,MIG-aaaa-2"})
    assert [g.uuid for g in backend.gpus] == [uuid(0)]
    assert backend.gpus[0].mig_enabled
    assert opened(transport.envelopes[0])["gpus"][0]["mig_enabled"] is True
    # The whole GPU's energy, once: not once per slice.
    assert energy_by_gpu_mj(batches(transport.envelopes)) == {uuid(0): 400}
    # Utilisation is unavailable in MIG mode: sent as 0, the reading itself is kept.
    assert all(set(g.util_pct.tolist()) == {0} for b in batches(transport.envelopes) for g in b.gpus)


def test_legacy_mig_identifier_resolves_to_its_parent_gpu() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0)), FakeGpu(uuid(1), mig_mode=1)])
    backend = NvmlBackend(nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": f"MIG-{uuid(1)}/1/0,MIG-{uuid(1)}/2/0"})
    assert [g.uuid for g in backend.gpus] == [uuid(1)]


def test_a_failed_read_skips_the_sample_and_the_next_difference_covers_the_gap() -> None:
    gpu = FakeGpu(uuid(0))
    nvml = FakeNvml([gpu])
    plan: list[dict[int, int]] = [{}, {0: 10}, {0: 10}, {0: 10}, {0: 10}]
    backend = NvmlBackend(nvml=nvml, environ={})
    clock = VirtualClock(T0_MS)
    transport = MemoryTransport()
    streamer = Streamer(backend, transport, run="r", token=TOKEN, node="n", clock=clock)
    for k, deltas in enumerate(plan):
        clock.sleep_until(T0_MS + 100 * k)
        gpu.energy_mj += deltas.get(0, 0)
        gpu.fail_next_reads = 1 if k == 2 else 0
        streamer.tick()
    streamer.close()
    decoded = batches(transport.envelopes)
    assert sum(g.samples for b in decoded for g in b.gpus) == 4
    assert energy_by_gpu_mj(decoded) == {uuid(0): 40}


def test_backend_finds_pynvml_through_sys_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([FakeGpu(uuid(5))]))
    backend = NvmlBackend(environ={})
    assert [g.uuid for g in backend.gpus] == [uuid(5)]
    assert backend.gpus[0].architecture == "Hopper"


def test_missing_nvml_library_gives_a_clear_message() -> None:
    with pytest.raises(BackendUnavailable) as info:
        NvmlBackend(nvml=FakeNvml([], library_missing=True), environ={})
    assert str(info.value) == (
        "NVML not available (NVML Shared Library Not Found): no NVIDIA driver on this machine; "
        "use --backend simulated"
    )


def test_probe_lists_every_gpu_with_counter_and_selection() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=123), FakeGpu(uuid(1), arch=4), FakeGpu(uuid(2), mig_mode=1)])
    report = probe(nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": "0,2"})
    assert [(g["uuid"], g["energy_counter"], g["energy_mj"], g["mig_enabled"], g["selected"]) for g in report] == [
        (uuid(0), True, 123, False, True),
        (uuid(1), False, None, False, False),
        (uuid(2), True, 5_000_000_000, True, True),
    ]
    assert report[1]["architecture"] == "Pascal"

"""Trackers under a launcher: each process measures its own GPU, or local rank 0 measures the node, never N times."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from tests.agents.fake_nvml import FakeGpu, FakeNvml
from tests.agents.support import TOKEN, batches, energy_by_gpu_mj
from wattwise_agent import torch_hooks
from wattwise_agent.clock import SteppedClock
from wattwise_agent.torch_hooks import Tracker
from wattwise_agent.transport import MemoryTransport

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
LAUNCHER_VARIABLES = ("LOCAL_RANK", "LOCAL_WORLD_SIZE", "RANK", "WORLD_SIZE", "GROUP_RANK", "SLURM_LOCALID",
                      "OMPI_COMM_WORLD_LOCAL_RANK", "WATTWISE_RANKS", "CUDA_VISIBLE_DEVICES")


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


def as_torchrun_rank(monkeypatch: pytest.MonkeyPatch, local_rank: int, local_world_size: int = 4) -> None:
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world_size))
    monkeypatch.setenv("RANK", str(local_rank))
    monkeypatch.setenv("WORLD_SIZE", str(local_world_size))


def train(tracker: Tracker, clock: SteppedClock | None = None, steps: int = 12) -> None:
    for step in range(steps):
        with tracker.stage("forward"):
            pass
        tracker.step(step)
        if clock is not None:
            clock.advance_by(250)


def tracked(steps: int = 12, **options: object) -> tuple[Tracker, MemoryTransport]:
    """A replayed training loop of ``steps`` 250 ms steps from T0, on 4 simulated GPUs' node."""
    transport = MemoryTransport()
    clock = SteppedClock(T0_MS)
    tracker = Tracker("ddp", backend="simulated", transport=transport, token=TOKEN, node="ddp-host", seed=5,
                      window_s=1.0, clock=clock, **options)
    with tracker:
        train(tracker, clock, steps)
    return tracker, transport


def open_run_gpus(transport: MemoryTransport) -> list[str]:
    opened = [json.loads(e["body"]) for e in transport.envelopes if e["kind"] == "open_run"]
    return [gpu["uuid"] for message in opened for gpu in message["gpus"]]


def test_four_ranks_each_measuring_its_own_gpu_store_what_one_tracker_reading_all_four_stores(no_launcher) -> None:
    _, one = tracked(gpus=4)  # outside a launcher, every GPU of the node
    per_rank = []
    for rank in range(4):
        as_torchrun_rank(no_launcher, rank)
        tracker, transport = tracked()
        assert tracker.measuring and open_run_gpus(transport) == [f"GPU-SIM-ddp-host-{rank}"]
        per_rank.append(transport)
    together: dict[str, int] = {}
    for transport in per_rank:
        together.update(energy_by_gpu_mj(batches(transport.envelopes)))
    # The same readings at the same instants: the same counter differences, to the mJ.
    assert together == energy_by_gpu_mj(batches(one.envelopes))
    assert len(together) == 4 and all(mj > 0 for mj in together.values())
    streams = {json.loads(t.envelopes[0]["body"])["stream"] for t in per_rank}
    assert len(streams) == 4  # one run, a stream per process


def test_with_ranks_node_local_rank_0_measures_the_node_and_the_others_send_nothing(no_launcher) -> None:
    _, one = tracked(gpus=4)  # outside a launcher, every GPU of the node
    as_torchrun_rank(no_launcher, 0)
    first, transport = tracked(ranks="node")
    assert open_run_gpus(transport) == [f"GPU-SIM-ddp-host-{k}" for k in range(4)]
    assert first.summary is not None and first.summary.samples_sent > 0
    assert energy_by_gpu_mj(batches(transport.envelopes)) == energy_by_gpu_mj(batches(one.envelopes))

    as_torchrun_rank(no_launcher, 3)
    no_launcher.setenv("WATTWISE_RANKS", "node")
    other, transport = tracked()
    assert not other.measuring and transport.envelopes == []
    assert other.streamer is None and other.summary is None and other.error is None


def test_outside_a_launcher_alone_on_the_node_or_with_gpus_given_nothing_changes(no_launcher) -> None:
    _, alone = tracked()
    assert open_run_gpus(alone) == ["GPU-SIM-ddp-host-0"]
    as_torchrun_rank(no_launcher, 0, local_world_size=1)
    _, single = tracked(gpus=2)
    assert open_run_gpus(single) == ["GPU-SIM-ddp-host-0", "GPU-SIM-ddp-host-1"]
    as_torchrun_rank(no_launcher, 3)
    _, chosen = tracked(gpus=2, ranks="node")
    assert open_run_gpus(chosen) == ["GPU-SIM-ddp-host-0", "GPU-SIM-ddp-host-1"]


def uuid(n: int) -> str:
    return f"GPU-{n:08x}-1111-2222-3333-444455556666"


def test_an_nvml_rank_measures_the_gpu_it_drives(no_launcher) -> None:
    no_launcher.setitem(sys.modules, "pynvml", FakeNvml([FakeGpu(uuid(i)) for i in range(4)]))
    as_torchrun_rank(no_launcher, 1, local_world_size=2)
    no_launcher.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    transport = MemoryTransport()
    with Tracker("ddp", transport=transport, token=TOKEN, node="gpu-host", rate_hz=50):
        pass
    assert open_run_gpus(transport) == [uuid(3)]  # the LOCAL_RANK-th of those it sees
    # With CUDA in use the current device decides (found by UUID, as torch reports it).
    no_launcher.setattr(torch_hooks, "current_cuda_gpu_uuid", lambda: uuid(2))
    transport = MemoryTransport()
    with Tracker("ddp", transport=transport, token=TOKEN, node="gpu-host", rate_hz=50):
        pass
    assert open_run_gpus(transport) == [uuid(2)]


def test_bad_launcher_values_and_modes_are_refused_before_anything_is_sent(no_launcher) -> None:
    no_launcher.setenv("LOCAL_RANK", "zero")
    with pytest.raises(ValueError, match="LOCAL_RANK='zero' is not a whole number"):
        Tracker("ddp", backend="simulated", transport=MemoryTransport(), token=TOKEN)
    as_torchrun_rank(no_launcher, 0)
    with pytest.raises(ValueError, match="ranks='every': use 'own'"):
        Tracker("ddp", backend="simulated", transport=MemoryTransport(), token=TOKEN, ranks="every")
    with pytest.raises(ValueError, match="a virtual clock drives only the simulated backend"):
        Tracker("ddp", transport=MemoryTransport(), token=TOKEN, clock=SteppedClock(T0_MS))

"""A ``torchrun --nproc-per-node 4`` DDP job, each process tracked, stores the energy one agent stores.

The real thing end to end: torchrun starts four processes that train a small model together over gloo
(``examples/torchrun_tracker.py``); each opens a Tracker without ``gpus=`` and so measures only its own
simulated GPU (``WATTWISE_RANKS=own``, the default), streaming over HTTP into one run on the real app. One
agent (``python -m wattwise_agent stream``) reads all four GPUs of the same simulated node over the same
interval into another run. Both replay the interval in simulated time (the job's clock moves on a fixed
step per training step), so they measure the same stretch exactly, whatever the machine's speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dashboard.telemetry.models import Rejection, Run, RunGpu, RunNode
from tests.factories import register
from tests.worker_process import ROOT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.torch]

RANKS, SEED, STEPS, STEP_MS = 4, 5, 16, 500
START = "2026-01-01T00:00:00Z"


def environment(token: str, url: str, cache: Path) -> dict[str, str]:
    return {"WATTWISE_TOKEN": token, "WATTWISE_URL": url, "XDG_CACHE_HOME": str(cache), "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def torchrun_job(token: str, url: str, cache: Path) -> list[dict[str, Any]]:
    """The job's processes' summary lines, rank by rank."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(RANKS),
               str(ROOT / "examples" / "torchrun_tracker.py"), "--run-name", "ddp", "--backend", "simulated",
               "--node-name", "ddp-host", "--seed", str(SEED), "--steps", str(STEPS), "--step-ms", str(STEP_MS),
               "--replay-from", START, "--window", "1"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240,
                            env=environment(token, url, cache))
    assert result.returncode == 0, result.stderr[-4000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return sorted(lines, key=lambda line: line["rank"])


def one_agent(token: str, url: str, cache: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "wattwise_agent", "stream", "--backend", "simulated", "--run", "one-agent",
               "--node", "ddp-host", "--gpus", str(RANKS), "--seed", str(SEED), "--start", START, "--fast",
               "--duration", f"{STEPS * STEP_MS}ms", "--window", "1s", "--quiet"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=environment(token, url, cache))
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_a_torchrun_job_tracking_each_rank_stores_the_energy_one_agent_stores_gpu_by_gpu(
    postgres, live_server, tmp_path
):
    node = register("ddp-host", "vision")
    ranks = torchrun_job(node.token, live_server.url, tmp_path)
    agent = one_agent(node.token, live_server.url, tmp_path)

    assert [line["rank"] for line in ranks] == list(range(RANKS))
    for line in ranks:
        assert line["measuring"] and line["last_loss"] < line["first_loss"]  # it really trained
        assert line["spooled"] == 0 and line["refused"] == 0 and "error" not in line
        # Each process read its own GPU, the one its local rank names.
        assert list(line["energy_j"]) == [f"GPU-SIM-ddp-host-{line['local_rank']}"]
    assert agent["spooled"] == 0 and agent["refused"] == 0
    assert not Rejection.objects.exists()

    job = Run.objects.get(name="ddp")
    assert job.status == Run.Status.FINISHED
    assert RunNode.objects.filter(run=job).values("stream").distinct().count() == RANKS  # one run, 4 streams
    job_j = dict(RunGpu.objects.filter(run=job).values_list("gpu__uuid", "energy_j"))
    agent_j = dict(RunGpu.objects.filter(run__name="one-agent").values_list("gpu__uuid", "energy_j"))
    assert sorted(job_j) == sorted(agent_j) == [f"GPU-SIM-ddp-host-{k}" for k in range(RANKS)]
    for uuid, energy_j in agent_j.items():
        # The same counter readings at the same instants: the same mJ (only float sums may differ).
        assert job_j[uuid] == pytest.approx(energy_j, abs=1e-6), uuid
        # ... and the simulator's truth, to the counter's mJ (the exit line rounds to the mJ).
        assert energy_j == pytest.approx(agent["energy_j"][uuid], abs=2e-3), uuid
    # Each GPU read once: no overlap to flag, nothing counted twice.
    assert set(RunGpu.objects.filter(run=job).values_list("streams", "overlap_ms")) == {(1, 0)}
    assert sum(job_j.values()) == pytest.approx(sum(agent_j.values()), abs=1e-6)

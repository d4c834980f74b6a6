"""A simulated agent streams to a real worker on Redis and PostgreSQL: what is stored is what was sent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.core.management import call_command

from dashboard.telemetry.models import BatchReceipt, Rejection, Run
from tests.factories import register
from tests.worker_process import ROOT, flush, wait_until, worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.processes]


def stream(node, redis_url, spool_dir, *extra: str) -> dict:
    """Run the agent CLI to completion and return its exit line."""
    command = [sys.executable, "-m", "wattwise_agent", "stream", "--backend", "simulated", "--run", "e2e", "--node", node.name,
               "--broker", redis_url, "--quiet", "--spool-dir", str(spool_dir / node.name), *extra]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"WATTWISE_TOKEN": node.token, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_streamed_energy_equals_the_simulators_ground_truth(postgres, redis_url, capsys, tmp_path):
    flush(redis_url)
    nodes = [register("sim-a", "vision"), register("sim-b", "vision")]
    with worker(redis_url, pool="threads") as process:
        lines = [
            stream(nodes[0], redis_url, tmp_path, "--gpus", "4", "--duration", "10m", "--start", "2026-01-01T00:00:00Z",
                   "--fast", "--seed", "7", "--reset-at", "4m"),
            stream(nodes[1], redis_url, tmp_path, "--gpus", "2", "--duration", "10m", "--start", "2026-01-01T00:00:00Z",
                   "--fast", "--seed", "8", "--without-counter", "1"),
        ]
        batches = sum(line["batches_sent"] for line in lines)
        wait_until(lambda: BatchReceipt.objects.count() == batches, 120, f"{batches} batches", process)
        wait_until(lambda: Run.objects.filter(name="e2e", status=Run.Status.FINISHED).exists(), 30, "the run to close", process)

    capsys.readouterr()
    call_command("run_summary", "e2e")
    summary = json.loads(capsys.readouterr().out)
    truth = {uuid: j for line in lines for uuid, j in line["true_energy_j"].items()}
    assert summary["samples"] == sum(line["samples_sent"] for line in lines)
    assert set(summary["gpus"]) == set(truth)
    for uuid, energy_j in truth.items():
        # The bar is 0.1 %. GPUs with a counter (even one that reset) match to the counter's mJ resolution;
        # the GPU without one is a trapezoid estimate of 10 Hz power readings.
        tolerance = 1e-3 if summary["gpus"][uuid]["estimated"] else 1e-7
        assert summary["gpus"][uuid]["energy_j"] == pytest.approx(energy_j, rel=tolerance), uuid
    assert summary["energy_j"] == pytest.approx(sum(truth.values()), rel=1e-3)
    assert summary["gpus"]["GPU-SIM-sim-b-1"]["estimated"] is True
    assert not Rejection.objects.exists()

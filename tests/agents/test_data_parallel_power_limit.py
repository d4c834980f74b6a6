"""The power-limit optimiser in a real data-parallel job: two CPU processes (gloo, DDP) on emulated GPUs, under torchrun.

The example (``examples/data_parallel_power_limit.py``) runs in virtual GPU time, so its figures are the
profile's whatever the machine's load; the job's processes really train and really all-reduce.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agents.emulation_support import P_BLOCKING_W, profile_step

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parents[2]
RANKS, COMMUNICATION_MS, ETA = 2, 10.0, 0.5


def test_a_data_parallel_job_keeps_the_limit_the_cost_picks_and_saves_what_it_reported(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(RANKS),
               str(ROOT / "examples" / "data_parallel_power_limit.py"),
               "--profile", str(ROOT / "tests" / "agents" / "fixtures" / "a100_2_stages.csv"),
               "--p-blocking", str(P_BLOCKING_W), "--eta", str(ETA), "--virtual-time", "--allow-power-limits",
               "--communication-ms", str(COMMUNICATION_MS), "--profile-steps", "2", "--keep-steps", "3",
               "--out-dir", str(tmp_path)]
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "agents")]),
                   "OMP_NUM_THREADS": "1", "HOME": str(tmp_path), "WATTWISE_ALLOW_CLOCK_CHANGES": "1"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr[-4000:]
    [report] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    assert report["last_loss"] < report["first_loss"] and not report["dry_run"]
    trials = report["trials"]
    assert [t["limit_w"] for t in trials] == list(range(425, 174, -25))
    for trial in trials:  # every GPU of the job, per step: what the profile gives at that limit
        time_s, energy_j = profile_step(trial["limit_w"], COMMUNICATION_MS / 1000)
        assert trial["time_s"] == pytest.approx(time_s, rel=1e-6)
        assert trial["energy_j"] == pytest.approx(RANKS * energy_j, abs=0.005)
    max_power_w = 425 * RANKS
    costs = {t["limit_w"]: ETA * t["energy_j"] + (1 - ETA) * max_power_w * t["time_s"] for t in trials}
    assert report["chosen_w"] == min(costs, key=lambda w: (costs[w], -w)) < 425
    assert report["reported_saving_pct"] > 5
    assert report["reported_saving_pct"] == pytest.approx(report["realised_saving_pct"], abs=0.05)
    assert report["reported_time_change_pct"] == pytest.approx(report["realised_time_change_pct"], abs=0.05)
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == [f"{run}-rank{r}.jsonl" for run in
                                                               ("dp-max-limit", "dp-power-limit") for r in (0, 1)]

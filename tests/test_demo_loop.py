"""`make demo-loop`, shortened: the whole loop (baseline, profile and upload, solve through the API, the planned
run fetching its plan through the API) on emulated GPUs, against its own throwaway server, ends with the loop's
line, and the saving it realises is the one the planner predicted without slowing the iteration down."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^loop: predicted saving (-?\d+\.\d) %, realised saving (-?\d+\.\d) %, iteration time ([+-]\d+\.\d) %$")


def test_the_loop_realises_the_predicted_saving_at_the_same_iteration_time(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "examples" / "pipeline_parallel" / "loop.py"), "--keep", str(tmp_path),
               "--iterations", "4", "--microbatches", "4", "--clock-stride", "6", "--speed", "0",
               "--profile-speed", "0", "--timeout-s", "300"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "agents")])}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, env=environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    match = LINE.match(last)
    assert match, last
    predicted, realised, time_change = (float(g) for g in match.groups())
    assert predicted > 1.0
    assert abs(realised - predicted) <= 2.0
    assert time_change <= 1.0
    for stage in ("1/4 baseline", "2/4 profile", "3/4 solve", "4/4 planned"):
        assert f"== {stage}" in result.stdout
    assert (tmp_path / "db.sqlite3").exists() and (tmp_path / "login.txt").exists()

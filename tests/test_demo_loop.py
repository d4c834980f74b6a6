"""`make demo-loop`, shortened: the whole loop (baseline, profile and upload, solve through the API, the planned
run fetching its plan through the API, a straggler with and without plan switching) on emulated GPUs, against
its own throwaway server, ends with the loop's line, and the saving it realises is the one the planner
predicted without slowing the iteration down; with the straggler, the plan client switched within two
iterations and spent less energy than keeping the plan."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parents[1]
STRAGGLER = re.compile(r"^straggler: switched to the plan for T′ = (\d+\.\d+) s at iteration (\d+) \(straggler from "
                       r"iteration (\d+)\), energy per iteration (\d+\.\d) J vs (\d+\.\d) J keeping the original plan "
                       r"\(([+-]\d+\.\d) %\)$", re.MULTILINE)
LINE = re.compile(r"^loop: predicted saving (-?\d+\.\d) %, realised saving (-?\d+\.\d) %, iteration time ([+-]\d+\.\d) %$")


def test_the_loop_realises_the_predicted_saving_and_switches_plans_for_a_straggler(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "examples" / "pipeline_parallel" / "loop.py"), "--keep", str(tmp_path),
               "--iterations", "4", "--microbatches", "4", "--clock-stride", "6", "--speed", "0",
               "--profile-speed", "0", "--straggler-iterations", "6", "--straggler-from", "2",
               "--timeout-s", "300"]
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
    for stage in ("1/5 baseline", "2/5 profile", "3/5 solve", "4/5 planned", "5/5 straggler"):
        assert f"== {stage}" in result.stdout
    straggler = STRAGGLER.search(result.stdout)
    assert straggler, result.stdout[-2000:]
    at, first = int(straggler.group(2)), int(straggler.group(3))
    switched_j, kept_j, change = float(straggler.group(4)), float(straggler.group(5)), float(straggler.group(6))
    assert first == 2 and first < at <= first + 2
    assert switched_j < kept_j and change < 0
    assert result.stdout.strip().splitlines()[-2] == straggler.group(0)
    assert (tmp_path / "db.sqlite3").exists() and (tmp_path / "login.txt").exists()


def _straggler_runs(switched_at: list[int], switched_j: float, kept_j: float) -> tuple[dict, dict]:
    def steps(energy_j: float) -> list[dict]:
        return [{"step": s, "time_s": 1.0, "energy_j": energy_j, "wait_s": 0.0} for s in range(8)]

    plans = [[[0, "start", 584, 0.0], [at, "straggler", 336, 1.483]] for at in switched_at]
    return {"steps": steps(switched_j), "plans": plans}, {"steps": steps(kept_j), "plans": [[[0, "start", 584, 0.0]]] * 2}


@pytest.fixture()
def verdict(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "pipeline_parallel"))
    import loop

    return loop.straggler_verdict


def test_the_straggler_line_names_the_switch_and_both_energies(verdict) -> None:
    line = verdict(*_straggler_runs([4, 5], 690.0, 840.0), 3)
    assert STRAGGLER.match(line), line
    assert "at iteration 5 (straggler from iteration 3)" in line and "(-17.9 %)" in line


def test_the_loop_fails_when_the_switch_comes_later_than_two_iterations(verdict) -> None:
    with pytest.raises(SystemExit, match="switched 3 iterations after the straggler appeared, more than 2"):
        verdict(*_straggler_runs([4, 6], 690.0, 840.0), 3)


def test_the_loop_fails_when_switching_saves_no_energy(verdict) -> None:
    with pytest.raises(SystemExit, match="did not lower the energy per iteration"):
        verdict(*_straggler_runs([4, 4], 840.0, 840.0), 3)


def test_the_loop_fails_when_a_rank_never_switched(verdict) -> None:
    switched, kept = _straggler_runs([4, 4], 690.0, 840.0)
    switched["plans"][1] = [[0, "start", 584, 0.0]]
    with pytest.raises(SystemExit, match="rank 1 never switched plans"):
        verdict(switched, kept, 3)

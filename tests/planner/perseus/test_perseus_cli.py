"""The planner command line: python -m planner frontier|plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from planner.perseus import Frontier
from planner.perseus.cli import main
from tests.planner.perseus.perseus_helpers import expected_frontier

ARGS = ["--stages", "8", "--microbatches", "12", "--unit-time", "0.001", "--p-blocking", "83.64"]


def test_frontier_command_writes_the_reference_frontier_in_compat_mode(
    gpt3_profile_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "frontier.csv"
    status = main(["frontier", str(gpt3_profile_path), *ARGS, "--compat", "lowtime", "--out", str(out)])
    assert status == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "time,energy"
    got = np.array([[float(x) for x in r.split(",")] for r in rows[1:]])
    want = np.array(expected_frontier(12))
    assert got.shape == want.shape
    assert np.allclose(got[:, 0], want[:, 0], rtol=0, atol=1e-12)
    assert np.allclose(got[:, 1], want[:, 1], rtol=1e-6, atol=0)
    plans = tmp_path / "frontier.plans.npz"
    assert Frontier.from_bytes(plans.read_bytes()).problem.num_microbatches == 12
    assert "639 points" in capsys.readouterr().out


def test_frontier_command_can_write_realised_figures(gpt3_profile_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.csv"
    assert main(["frontier", str(gpt3_profile_path), *ARGS, "--out", str(out), "--realised"]) == 0
    header = (tmp_path / "f.realised.csv").read_text().splitlines()[0]
    assert header == "time,energy,realised_time,realised_energy"


def test_plan_command_prints_a_summary_and_writes_per_rank_json(
    gpt3_profile_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan.json"
    csv_out = tmp_path / "plan.csv"
    status = main(
        [
            "plan",
            str(gpt3_profile_path),
            *ARGS,
            "--straggler-time",
            "3.2",
            "--out",
            str(out),
            "--csv",
            str(csv_out),
        ]
    )
    assert status == 0
    document = json.loads(out.read_text())
    assert document["summary"]["straggler_time_s"] == 3.2
    assert document["summary"]["realised_time_s"] <= 3.2
    assert [r["rank"] for r in document["ranks"]] == list(range(8))
    assert document["ranks"][3]["frequencies"][0][0] == "forward"
    assert csv_out.read_text().startswith("stage,order,instruction,microbatch,freq_mhz\n")
    printed = capsys.readouterr().out
    assert "saving:" in printed and "%" in printed


def test_plan_command_reuses_a_stored_frontier(gpt3_profile_path: Path, tmp_path: Path) -> None:
    frontier_csv = tmp_path / "f.csv"
    assert main(["frontier", str(gpt3_profile_path), *ARGS, "--out", str(frontier_csv)]) == 0
    out = tmp_path / "p.json"
    stored = tmp_path / "f.plans.npz"
    assert main(["plan", str(gpt3_profile_path), *ARGS, "--frontier", str(stored), "--out", str(out)]) == 0
    # A stored frontier for other arguments is refused.
    other = [a if a != "12" else "24" for a in ARGS]
    assert main(["plan", str(gpt3_profile_path), *other, "--frontier", str(stored), "--out", str(out)]) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("stage,instruction,frequency,time\n0,forward,1410,0.1\n", "column 'energy'"),
        ("stage,instruction,frequency,time,energy\n0,forward,1410,0.1,-2\n0,backward,1410,0.2,4\n", "line 2"),
        ("stage,instruction,frequency,time,energy\n0,forward,1410,0.1,2\n", "instruction 'backward'"),
    ],
)
def test_bad_profile_exits_with_status_2_and_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    profile = tmp_path / "bad.csv"
    profile.write_text(content)
    status = main(["frontier", str(profile), *ARGS, "--out", str(tmp_path / "f.csv")])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err


def test_stage_count_mismatch_exits_with_status_2(
    gpt3_profile_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--stages", "4", "--microbatches", "4", "--unit-time", "0.001", "--p-blocking", "83.64"]
    assert main(["frontier", str(gpt3_profile_path), *args, "--out", str(tmp_path / "f.csv")]) == 2
    assert "8 stage(s) but 4 were requested" in capsys.readouterr().err


def test_missing_profile_file_exits_with_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frontier", str(tmp_path / "nope.csv"), *ARGS, "--out", str(tmp_path / "f.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_bad_numbers_are_argument_errors_with_status_2(gpt3_profile_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(
            [
                "frontier",
                str(gpt3_profile_path),
                "--stages",
                "8",
                "--microbatches",
                "0",
                "--unit-time",
                "0.001",
                "--p-blocking",
                "83.64",
                "--out",
                "x.csv",
            ]
        )
    assert info.value.code == 2


def test_too_fine_a_unit_time_is_refused(
    gpt3_profile_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--stages", "8", "--microbatches", "12", "--unit-time", "1e-9", "--p-blocking", "83.64"]
    assert main(["frontier", str(gpt3_profile_path), *args, "--out", str(tmp_path / "f.csv")]) == 2
    assert "use a larger unit time" in capsys.readouterr().err


def test_python_m_planner_runs_without_django_settings(gpt3_profile_path: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = tmp_path / "f.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "planner",
            "frontier",
            str(gpt3_profile_path),
            *ARGS,
            "--out",
            str(out),
            "--progress",
        ],
        cwd=Path(__file__).resolve().parents[3],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert out.exists()
    assert "frontier" in result.stderr  # the tqdm bar

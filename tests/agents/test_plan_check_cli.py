"""Plan files: what is accepted, what is refused and how it is said; ``python -m wattwise_agent plan-check``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wattwise_agent import cli
from wattwise_agent.frequency_plan import PlanError, load_plans, load_rank_plan, parse_plans

RANK_0 = {"rank": 0, "frequencies": [["forward", 1410], ["forward", 1200], ["backward", 1200], ["backward", 1410]]}


def test_one_rank_a_list_of_ranks_and_the_planners_output_are_all_read() -> None:
    assert parse_plans(json.dumps(RANK_0))[0].frequencies[1] == ("forward", 1200)
    rank_1 = {**RANK_0, "rank": 1}
    assert [p.rank for p in parse_plans([RANK_0, rank_1])] == [0, 1]
    planner_output = {"summary": {"time_s": 1.0}, "ranks": [RANK_0, rank_1]}
    assert load_rank_plan(json.dumps(planner_output), 1).rank == 1
    plan = parse_plans(RANK_0)[0]
    assert plan.summary() == {"rank": 0, "instructions_per_iteration": 4, "by_instruction": {"forward": 2,
                              "backward": 2}, "frequencies_mhz": [1410, 1200], "min_mhz": 1200, "max_mhz": 1410,
                              "clock_changes_per_iteration": 2}


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"rank": 0, "frequencies": [["forward", NaN], ["backward", 1]]}', "NaN is not a valid number"),
        ({"frequencies": RANK_0["frequencies"]}, "rank: expected a pipeline rank"),
        ({"rank": -1, "frequencies": RANK_0["frequencies"]}, "rank: expected a pipeline rank"),
        ({"rank": 0, "frequencies": []}, "frequencies: expected a non-empty list"),
        ({"rank": 0, "frequencies": [["forward", 1410], ["optimizer", 1410]]},
         r"frequencies\[1\]: unknown instruction 'optimizer'"),
        ({"rank": 0, "frequencies": [["forward", True], ["backward", 1410]]}, r"frequencies\[0\]: frequency must be"),
        ({"rank": 0, "frequencies": [["forward", 1410.5], ["backward", 1410]]}, "whole number of MHz"),
        ({"rank": 0, "frequencies": [["forward", 1410, 3], ["backward", 1410]]}, r'expected \["forward" or'),
        ({"rank": 0, "frequencies": [["forward", 1410], ["forward", 1410], ["backward", 1410]]},
         "2 forward but 1 backward"),
        ([RANK_0, RANK_0], r"\[1\]: rank 0 appears twice"),
        ({"ranks": [RANK_0, {"rank": 1, "frequencies": [["forward", 0], ["backward", 1]]}]},
         r"ranks\[1\].frequencies\[0\]: frequency must be"),
        ("[]", "no ranks"),
        ("42", "expected"),
    ],
)
def test_a_bad_plan_is_refused_saying_where(plan: object, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_plans(plan)  # type: ignore[arg-type]


def test_asking_for_a_rank_the_plan_does_not_have() -> None:
    with pytest.raises(PlanError, match=r"has no rank 5 \(it has ranks 0–1\)"):
        load_rank_plan([RANK_0, {**RANK_0, "rank": 1}], 5)
    with pytest.raises(PlanError, match=r"cannot read plan file '/nonexistent/plan\.json'"):
        load_plans(Path("/nonexistent/plan.json"))


def test_plan_check_summarises_every_rank_of_a_plan_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"summary": {"time_s": 1.0}, "ranks": [RANK_0, {**RANK_0, "rank": 1}]}))
    assert cli.main(["plan-check", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: valid, 2 rank(s)\n")
    assert "rank 1: 4 instructions per iteration (2 forward, 2 backward); 2 clock(s) 1200–1410 MHz" in out
    assert cli.main(["plan-check", str(path), "--rank", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"plan": str(path), "ranks": [{**parse_plans(RANK_0)[0].summary(), "rank": 1}]}


@pytest.mark.app
def test_plan_check_summarises_every_rank_of_a_planner_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from planner import perseus

    profile = perseus.parse_profile(perseus.synthetic_profile_csv(4, "a100"))
    frontier = perseus.solve_frontier(profile, perseus.PlanningProblem(4, 8, 0.001, 80.0))
    path = tmp_path / "plan.json"
    path.write_text(perseus.plan_at(frontier, len(frontier) // 2).to_json())
    assert cli.main(["plan-check", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: valid, 4 rank(s)")
    assert "rank 3: 16 instructions per iteration (8 forward, 8 backward)" in out
    assert cli.main(["plan-check", str(path), "--rank", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in report["ranks"]] == [2]
    assert report["ranks"][0]["instructions_per_iteration"] == 16
    assert set(report["ranks"][0]["frequencies_mhz"]) <= set(profile.frequencies_mhz)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"rank": 0, "frequencies": [["forward", 1410]]}', "1 forward but 0 backward"),
        ("not json at all", "the plan is not valid JSON"),
        ("{}", "rank: expected a pipeline rank"),
    ],
)
def test_plan_check_of_a_bad_file_exits_2_with_one_line(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(content)
    assert cli.main(["plan-check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"wattwise-agent: invalid plan '{path}': ")
    assert message in captured.err and captured.err.count("\n") == 1

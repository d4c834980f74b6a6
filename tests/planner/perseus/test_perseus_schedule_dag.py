"""Pipeline schedules and the computation DAG."""

from __future__ import annotations

import pytest

from planner.perseus import PlannerError, ProblemTooLargeError, Schedule
from planner.perseus.dag import build_dag
from planner.perseus.schedule import stage_order


def _short(schedule: Schedule, stages: int, microbatches: int, stage: int) -> str:
    return " ".join(f"{c.instruction[0].upper()}{c.microbatch}" for c in stage_order(schedule, stages, microbatches, stage))


def test_1f1b_order_matches_lowtime_for_4_stages_8_microbatches() -> None:
    assert _short(Schedule.ONE_F_ONE_B, 4, 8, 0) == "F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7"
    assert _short(Schedule.ONE_F_ONE_B, 4, 8, 1) == "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 F6 B4 F7 B5 B6 B7"
    assert _short(Schedule.ONE_F_ONE_B, 4, 8, 2) == "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 F6 B5 F7 B6 B7"
    assert _short(Schedule.ONE_F_ONE_B, 4, 8, 3) == "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7"


def test_1f1b_with_fewer_microbatches_than_stages_still_runs_everything() -> None:
    for stage in range(4):
        order = stage_order(Schedule.ONE_F_ONE_B, 4, 2, stage)
        assert sorted((c.instruction, c.microbatch) for c in order) == [
            ("backward", 0),
            ("backward", 1),
            ("forward", 0),
            ("forward", 1),
        ]


def test_gpipe_runs_all_forwards_then_backwards_in_reverse() -> None:
    assert _short(Schedule.GPIPE, 3, 4, 1) == "F0 F1 F2 F3 B3 B2 B1 B0"


@pytest.mark.parametrize(("stages", "microbatches"), [(4, 8), (8, 12), (8, 32), (3, 1), (1, 5)])
def test_1f1b_dag_has_the_published_edge_count(stages: int, microbatches: int) -> None:
    dag = build_dag(Schedule.ONE_F_ONE_B, stages, microbatches)
    s, m = stages, microbatches
    assert dag.num_computations == 2 * s * m
    dependency_edges = s * (2 * m - 1) + 2 * m * (s - 1)
    assert len(dag.edges) == dependency_edges + 2  # one edge from the source, one into the sink


@pytest.mark.parametrize("schedule", list(Schedule))
def test_dag_respects_data_dependencies_and_topological_order(schedule: Schedule) -> None:
    dag = build_dag(schedule, 4, 6)
    position = {v: i for i, v in enumerate(dag.topo_order)}
    assert dag.topo_order[0] == dag.source
    for u, v in dag.edges:
        assert position[u] < position[v]
    index = {(c.stage, c.instruction, c.microbatch): i for i, c in enumerate(dag.computations)}
    edges = set(dag.edges)
    for s in range(3):
        for m in range(6):
            assert (index[(s, "forward", m)], index[(s + 1, "forward", m)]) in edges
            assert (index[(s + 1, "backward", m)], index[(s, "backward", m)]) in edges


def test_dag_rejects_bad_shapes() -> None:
    with pytest.raises(PlannerError, match="stages"):
        build_dag(Schedule.ONE_F_ONE_B, 0, 4)
    with pytest.raises(PlannerError, match="microbatches"):
        build_dag(Schedule.ONE_F_ONE_B, 4, 0)
    with pytest.raises(ProblemTooLargeError, match="computations"):
        build_dag(Schedule.ONE_F_ONE_B, 1000, 1000)

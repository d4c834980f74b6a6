"""The agent's 1F1B order, which training loops on the nodes run and the planner builds its plans on."""

from __future__ import annotations

from wattwise_agent.pipeline_order import one_f_one_b


def written(stages: int, microbatches: int, stage: int) -> str:
    return " ".join(f"{instruction[0].upper()}{mb}" for instruction, mb in one_f_one_b(stages, microbatches, stage))


def test_each_stage_warms_up_then_alternates_then_drains():
    assert [written(4, 8, s) for s in range(4)] == [
        "F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7",
        "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 F6 B4 F7 B5 B6 B7",
        "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 F6 B5 F7 B6 B7",
        "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7",
    ]


def test_fewer_microbatches_than_stages_still_run_each_once_forward_then_backward():
    for stage in range(4):
        order = one_f_one_b(4, 2, stage)
        assert sorted(order) == [("backward", 0), ("backward", 1), ("forward", 0), ("forward", 1)]
        assert order.index(("forward", 0)) < order.index(("backward", 0))

"""Pipeline schedules: the order in which each stage runs its forward and backward computations.

In pipeline-parallel training a minibatch is split into M microbatches that flow through S stages.
Each stage runs one forward (``F``) and one backward (``B``) computation per microbatch, one at a
time, in an order fixed by the schedule:

Synchronous 1F1B (``1f1b``; DeepSpeed's ``TrainSchedule``, Megatron-LM's non-interleaved schedule)
    stage ``s`` runs ``min(S − s, M)`` warm-up forwards, then alternates one backward and one
    forward, then drains the remaining backwards. For S = 4, M = 8::

        stage 0: F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7
        stage 1: F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 F6 B4 F7 B5 B6 B7
        stage 2: F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 F6 B5 F7 B6 B7
        stage 3: F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7

    This is lowtime 0.3.0's ``Synchronous1F1B`` step mapping, reproduced exactly; the order itself is the
    agent's (``wattwise_agent.pipeline_order``, standard library only), so the training loops on the nodes
    and the plans built here share one definition.

GPipe (``gpipe``)
    every stage runs all forwards, then all backwards in reverse microbatch order (the last
    microbatch's gradient is ready first on the last stage)::

        stage s: F0 F1 ... F(M−1) B(M−1) ... B1 B0

Both schedules are synchronous: an iteration ends when every stage has finished its last backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from wattwise_agent.pipeline_order import one_f_one_b


class Schedule(StrEnum):
    """Supported pipeline schedules."""

    ONE_F_ONE_B = "1f1b"
    GPIPE = "gpipe"


@dataclass(frozen=True)
class Computation:
    """One forward or backward computation of one microbatch on one stage."""

    stage: int
    instruction: str
    microbatch: int


def _one_f_one_b(num_stages: int, num_microbatches: int, stage: int) -> list[Computation]:
    """The agent's 1F1B order (what training loops on the nodes run), as this stage's computations."""
    return [Computation(stage, instruction, mb) for instruction, mb in one_f_one_b(num_stages, num_microbatches, stage)]


def _gpipe(num_stages: int, num_microbatches: int, stage: int) -> list[Computation]:
    forwards = [Computation(stage, "forward", m) for m in range(num_microbatches)]
    backwards = [Computation(stage, "backward", m) for m in reversed(range(num_microbatches))]
    return forwards + backwards


def stage_order(schedule: Schedule, num_stages: int, num_microbatches: int, stage: int) -> list[Computation]:
    """The computations of ``stage`` in the order it runs them during one iteration."""
    if schedule is Schedule.ONE_F_ONE_B:
        return _one_f_one_b(num_stages, num_microbatches, stage)
    return _gpipe(num_stages, num_microbatches, stage)

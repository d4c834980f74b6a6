"""The order in which a pipeline stage runs its computations under synchronous 1F1B: what a training loop
iterates (``examples/pipeline_parallel``) and what the planner's plans are built on
(``planner.perseus.schedule``), one function for both, so a plan's instructions match the loop one for one.

Stage ``s`` of ``S`` runs ``min(S − s, M)`` warm-up forwards of its ``M`` microbatches, then alternates one
backward and one forward, then drains the remaining backwards. For S = 4, M = 8::

    stage 0: F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7
    stage 3: F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7

Standard library only (it ships with the agent, on Python 3.9 too).
"""

from __future__ import annotations

FORWARD = "forward"
BACKWARD = "backward"


def one_f_one_b(stages: int, microbatches: int, stage: int) -> list[tuple[str, int]]:
    """Stage ``stage``'s computations in 1F1B order, ``(instruction, microbatch)``: lowtime 0.3.0's
    ``Synchronous1F1B`` step mapping (adapted from DeepSpeed's ``TrainSchedule``), reproduced exactly."""
    order = []
    for step in range(2 * (microbatches + stages - 1)):
        even_step, even_stage = step % 2 == 0, stage % 2 == 0
        if even_step and even_stage:
            mb, forward = step // 2 - stage // 2, True
        elif not even_step and not even_stage:
            mb, forward = (step - 1) // 2 - stage // 2, True
        elif even_step and not even_stage:
            mb, forward = step // 2 - stages + (stage + 1) // 2, False
        else:
            mb, forward = (step - 1) // 2 - stages + 1 + stage // 2, False
        if 0 <= mb < microbatches:
            order.append((FORWARD if forward else BACKWARD, mb))
    return order

"""Frequency plans in the forms a training job consumes.

A plan gives every computation of one iteration a GPU frequency. A pipeline rank only needs its own
stage's list, in the order it runs the computations, and replays it every iteration — the shape
the Zeus pipeline frequency optimizer client (``FrequencySchedule``) consumes::

    {"rank": 0, "frequencies": [["forward", 1410], ["forward", 1395], ["backward", 1410], ...]}

Ranks are pipeline stages; with tensor or data parallelism every GPU of pipeline stage ``s`` uses
rank ``s``'s list. Plans are plain JSON (or CSV) — never Python to evaluate.

The CSV form has one row per computation::

    stage,order,instruction,microbatch,freq_mhz
    0,0,forward,0,1410
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from planner.perseus.frontier import Frontier


@dataclass(frozen=True)
class PlanStep:
    """One computation of a stage's iteration and its frequency."""

    order: int
    instruction: str
    microbatch: int
    freq_mhz: int


@dataclass(frozen=True)
class Plan:
    """The frequency plan of one frontier point."""

    index: int
    """Index of the point in its frontier (0 = slowest)."""
    time_s: float
    """Planned iteration time."""
    energy_j: float
    """Planned iteration energy, blocking included."""
    stages: tuple[tuple[PlanStep, ...], ...]
    """Per stage, its computations in program order."""

    def rank_schedule(self, rank: int) -> dict[str, Any]:
        """``{"rank": r, "frequencies": [[instruction, freq_mhz], ...]}`` for pipeline stage ``rank``."""
        if not 0 <= rank < len(self.stages):
            raise IndexError(f"rank {rank} is not a pipeline stage (0..{len(self.stages) - 1})")
        return {"rank": rank, "frequencies": [[s.instruction, s.freq_mhz] for s in self.stages[rank]]}

    def rank_schedules(self) -> list[dict[str, Any]]:
        """:meth:`rank_schedule` of every stage."""
        return [self.rank_schedule(r) for r in range(len(self.stages))]

    def to_json(self) -> str:
        """The plan as JSON: figures and every rank's schedule."""
        return json.dumps(
            {
                "index": self.index,
                "time_s": self.time_s,
                "energy_j": self.energy_j,
                "ranks": self.rank_schedules(),
            }
        )

    def to_csv(self) -> str:
        """``stage,order,instruction,microbatch,freq_mhz`` rows."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(("stage", "order", "instruction", "microbatch", "freq_mhz"))
        for stage, steps in enumerate(self.stages):
            for s in steps:
                w.writerow((stage, s.order, s.instruction, s.microbatch, s.freq_mhz))
        return out.getvalue()


def plan_at(frontier: Frontier, index: int) -> Plan:
    """The plan of frontier point ``index`` (negative indices count from the fastest end)."""
    k = index + len(frontier) if index < 0 else index
    freqs = frontier.frequencies(k)
    dag = frontier.dag
    stages = tuple(
        tuple(
            PlanStep(order, dag.computations[i].instruction, dag.computations[i].microbatch, freqs[i])
            for order, i in enumerate(ops)
        )
        for ops in dag.stage_ops
    )
    return Plan(index=k, time_s=float(frontier.time_s[k]), energy_j=float(frontier.energy_j[k]), stages=stages)

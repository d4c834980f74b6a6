"""The computation DAG of one pipeline-parallel training iteration.

Nodes are computations (forward or backward of one microbatch on one stage); an edge ``u → v``
means ``v`` cannot start before ``u`` has finished. Edges come from two rules:

* **program order** — a stage (one GPU) runs its computations one at a time, in its schedule's
  order (:mod:`~planner.perseus.schedule`), so consecutive computations of a stage are
  chained;
* **data dependencies** — ``F(s, m) → F(s+1, m)`` (activations flow down the pipeline) and
  ``B(s+1, m) → B(s, m)`` (gradients flow back up).

A dummy *source* precedes every computation without predecessors and a dummy *sink* follows every
computation without successors, so the iteration time is the length of the longest source–sink
path. Point-to-point communication is not a node: it is assumed to overlap with computation, and
the time a GPU waits is charged at P_blocking.

For 1F1B with S stages and M microbatches there are 2SM computations and
``S(2M−1) + 2M(S−1)`` dependency edges (plus one edge from the source and one into the sink).

Computations are numbered stage by stage in each stage's program order; the source is number
``num_computations`` and the sink ``num_computations + 1``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from planner.perseus.errors import PlannerError, ProblemTooLargeError
from planner.perseus.schedule import Computation, Schedule, stage_order

MAX_COMPUTATIONS = 200_000
"""Largest DAG accepted (2 × stages × microbatches computations)."""


@dataclass(frozen=True)
class PipelineDag:
    """The DAG of one iteration (see module docstring)."""

    schedule: Schedule
    num_stages: int
    num_microbatches: int
    computations: tuple[Computation, ...]
    stage_ops: tuple[tuple[int, ...], ...]
    """Per stage, its computations' numbers in program order."""
    edges: tuple[tuple[int, int], ...]
    """All edges, source and sink edges included."""
    preds: tuple[tuple[int, ...], ...]
    succs: tuple[tuple[int, ...], ...]
    topo_order: tuple[int, ...]
    """Every node (the source first) in a topological order."""

    @property
    def num_computations(self) -> int:
        """Number of real computations (2 × stages × microbatches)."""
        return len(self.computations)

    @property
    def source(self) -> int:
        """Node number of the dummy source."""
        return len(self.computations)

    @property
    def sink(self) -> int:
        """Node number of the dummy sink."""
        return len(self.computations) + 1

    @property
    def num_nodes(self) -> int:
        """Computations plus source and sink."""
        return len(self.computations) + 2


def build_dag(schedule: Schedule | str, num_stages: int, num_microbatches: int) -> PipelineDag:
    """Build the DAG of ``num_stages`` stages running ``num_microbatches`` microbatches."""
    schedule = Schedule(schedule)
    if num_stages < 1:
        raise PlannerError(f"the number of stages must be at least 1, got {num_stages}")
    if num_microbatches < 1:
        raise PlannerError(f"the number of microbatches must be at least 1, got {num_microbatches}")
    total = 2 * num_stages * num_microbatches
    if total > MAX_COMPUTATIONS:
        raise ProblemTooLargeError(
            f"{num_stages} stages × {num_microbatches} microbatches is {total} computations; "
            f"the limit is {MAX_COMPUTATIONS}"
        )

    computations: list[Computation] = []
    stage_ops: list[tuple[int, ...]] = []
    index: dict[tuple[int, str, int], int] = {}
    for stage in range(num_stages):
        ids = []
        for comp in stage_order(schedule, num_stages, num_microbatches, stage):
            index[(comp.stage, comp.instruction, comp.microbatch)] = len(computations)
            ids.append(len(computations))
            computations.append(comp)
        stage_ops.append(tuple(ids))

    n = len(computations)
    edge_set: set[tuple[int, int]] = set()
    edges: list[tuple[int, int]] = []

    def add(u: int, v: int) -> None:
        if (u, v) not in edge_set:
            edge_set.add((u, v))
            edges.append((u, v))

    for stage_ids in stage_ops:
        for u, v in itertools.pairwise(stage_ids):
            add(u, v)
    for stage in range(num_stages - 1):
        for m in range(num_microbatches):
            add(index[(stage, "forward", m)], index[(stage + 1, "forward", m)])
            add(index[(stage + 1, "backward", m)], index[(stage, "backward", m)])

    source, sink = n, n + 1
    indeg = [0] * n
    outdeg = [0] * n
    for u, v in edges:
        outdeg[u] += 1
        indeg[v] += 1
    for v in range(n):
        if indeg[v] == 0:
            add(source, v)
    for u in range(n):
        if outdeg[u] == 0:
            add(u, sink)

    preds: list[list[int]] = [[] for _ in range(n + 2)]
    succs: list[list[int]] = [[] for _ in range(n + 2)]
    for u, v in edges:
        succs[u].append(v)
        preds[v].append(u)

    # Kahn's algorithm; a cycle would mean the schedule deadlocks.
    remaining = [len(p) for p in preds]
    order = [source]
    head = 0
    while head < len(order):
        u = order[head]
        head += 1
        for v in succs[u]:
            remaining[v] -= 1
            if remaining[v] == 0:
                order.append(v)
    if len(order) != n + 2:  # pragma: no cover - generated schedules are acyclic
        raise PlannerError("the pipeline schedule deadlocks (its DAG has a cycle)")

    return PipelineDag(
        schedule=schedule,
        num_stages=num_stages,
        num_microbatches=num_microbatches,
        computations=tuple(computations),
        stage_ops=tuple(stage_ops),
        edges=tuple(edges),
        preds=tuple(tuple(p) for p in preds),
        succs=tuple(tuple(s) for s in succs),
        topo_order=tuple(order),
    )

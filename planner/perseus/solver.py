"""The Phillips–Dessouky time–cost trade-off solver: the whole iteration time–energy frontier.

Problem. Every computation ``i`` of the DAG (:mod:`~planner.perseus.dag`) can take any integer
duration ``d_i`` between its fastest and slowest option, at a convex, decreasing cost ``c_i(d_i)``
(:mod:`~planner.perseus.cost_model`). The iteration time is the DAG's longest path. For every
iteration time T, find durations that minimise ``Σ c_i(d_i)`` subject to the longest path ≤ T.

Algorithm (Phillips & Dessouky, 1977, "Solving the project time/cost tradeoff problem using the
minimal cut concept"; lowtime's ``PhillipsDessouky``). Start with every computation at its
slowest (cheapest) duration, then repeatedly shorten the iteration by one unit τ at the least extra
cost:

1. Compute earliest and latest start times (the critical path method) and keep only the *critical*
   computations and dependencies — those with zero slack. Only they limit the iteration time.
2. Give every critical computation a flow bound ``[lb, ub]``: ``ub`` is what speeding it up by one
   unit costs (``c(d−1) − c(d)``; unbounded if it is already at its fastest) and ``lb`` is what
   slowing it down by one unit saves (``c(d) − c(d+1)``; 0 if it is already at its slowest).
   Dependencies are free (``[0, ∞)``).
3. A minimum s–t cut of that network (:mod:`~planner.perseus.mincut`) is the cheapest way to
   shorten every critical path by one unit: speed up each computation crossing the cut forwards
   and slow down each one crossing it backwards (a path that crosses twice forwards also crosses
   once backwards). Its capacity ``Σ ub(S→T) − Σ lb(T→S)`` is the marginal cost of the step.
4. Apply the changes; the iteration is now one unit shorter. Stop when the cut has to cross
   something that cannot be sped up (a dependency, or a computation already at its fastest).

Every step yields one frontier point; with convex costs each point is optimal for its iteration
time (in the model of quantised durations and fitted costs). The number of steps is at most
``T_max − T_min``.

Two flavours, chosen by :class:`SolverSettings`:

* ``lowtime`` compatibility: bounds are lowtime 0.3.0's, floored to multiples of 1e-6 J (held
  here as exact integers), ``∞`` is lowtime's 10000 J, interior ``ub`` get lowtime's 1e-6 of slack,
  and the run also stops when a step's cost change is below 1e-6 J; the starting point itself is
  not reported (lowtime yields only after a step).
* ``default``: bounds are the exact integer micro-joule marginal costs of the convex-hull model,
  ``∞`` is unbounded, the start point is reported, and the run always reaches the fastest time.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from planner.perseus.dag import PipelineDag
from planner.perseus.errors import ProblemTooLargeError
from planner.perseus.mincut import IncrementalMinCut

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total_estimate)``: steps done so far and the expected number of steps."""

LOWTIME_FP_ERROR = 1e-6
LOWTIME_INF = 10000.0
DEFAULT_INF_UNITS = 1 << 62


@dataclass(frozen=True)
class DurationTable:
    """Costs and flow bounds of one kind of computation at every duration ``lo .. hi``.

    ``lb_units[k]``/``ub_units[k]`` are the bounds at duration ``lo + k`` in micro-units (1e-6 J);
    ``cost_j[k]`` is the model cost there. ``ub_units`` holds the solver's ``∞`` where the
    computation cannot be sped up.
    """

    lo: int
    hi: int
    cost_j: tuple[float, ...]
    lb_units: tuple[int, ...]
    ub_units: tuple[int, ...]


@dataclass(frozen=True)
class SolverSettings:
    """Flavour of the solver (see module docstring)."""

    inf_units: int
    stop_on_flat_step: bool
    report_start: bool


@dataclass
class SolverTrace:
    """Everything the solver produced, in compact form.

    Point ``k`` has quantised iteration time ``quant_times[k]`` and model cost ``costs_j[k]``.
    Its durations are ``start_durations`` with the changes ``delta_ops[delta_ptr[j]:delta_ptr[j+1]]``
    (signs in ``delta_signs``) applied for every ``j ≤ k``.
    """

    start_durations: list[int]
    quant_times: list[int] = field(default_factory=list)
    costs_j: list[float] = field(default_factory=list)
    cost_changes_j: list[float] = field(default_factory=list)
    delta_ptr: list[int] = field(default_factory=lambda: [0])
    delta_ops: list[int] = field(default_factory=list)
    delta_signs: list[int] = field(default_factory=list)
    max_quant_time: int = 0
    min_quant_time: int = 0
    stop_reason: str = ""
    elapsed_s: float = 0.0


class _CriticalPath:
    """Longest-path bookkeeping on the DAG (the critical path method)."""

    def __init__(self, dag: PipelineDag) -> None:
        self.order = list(dag.topo_order)
        self.rorder = self.order[::-1]
        self.preds = [list(p) for p in dag.preds]
        self.succs = [list(s) for s in dag.succs]
        n = dag.num_nodes
        self.finish = [0] * n
        """Earliest finish time of each node (head length including its own duration)."""
        self.tail = [0] * n
        """Longest path from the start of each node to the end of the DAG (including itself)."""

    def run(self, dur: list[int]) -> int:
        finish = self.finish
        preds = self.preds
        for v in self.order:
            best = 0
            for p in preds[v]:
                x = finish[p]
                if x > best:
                    best = x
            finish[v] = best + dur[v]
        tail = self.tail
        succs = self.succs
        for v in self.rorder:
            best = 0
            for s in succs[v]:
                x = tail[s]
                if x > best:
                    best = x
            tail[v] = best + dur[v]
        return max(finish)


def solve(
    dag: PipelineDag,
    op_tables: list[int],
    tables: list[DurationTable],
    settings: SolverSettings,
    progress: ProgressCallback | None = None,
    progress_interval_s: float = 0.5,
    max_steps: int | None = None,
) -> SolverTrace:
    """Run Phillips–Dessouky from the slowest to the fastest iteration time.

    Args:
        dag: The computation DAG.
        op_tables: For every computation, the index of its :class:`DurationTable` in ``tables``.
        tables: Duration tables.
        settings: Solver flavour.
        progress: Called as ``progress(done, total_estimate)`` at most every
            ``progress_interval_s`` seconds and once at the end.
        max_steps: Refuse (before solving) when ``T_max − T_min`` exceeds this many units.
    """
    started = _time.perf_counter()
    n_ops = dag.num_computations
    n = dag.num_nodes
    src, snk = dag.source, dag.sink
    inf = settings.inf_units
    lo = [tables[op_tables[i]].lo for i in range(n_ops)] + [0, 0]
    hi = [tables[op_tables[i]].hi for i in range(n_ops)] + [0, 0]
    cost_tab = [tables[op_tables[i]].cost_j for i in range(n_ops)]
    lb_tab = [tables[op_tables[i]].lb_units for i in range(n_ops)]
    ub_tab = [tables[op_tables[i]].ub_units for i in range(n_ops)]

    # Flow network: node 2i is where computation i starts, 2i+1 where it ends; arc i (for
    # i < n) is the computation itself, arc n + e the e-th dependency edge.
    edges = list(dag.edges)
    arcs = [(2 * i, 2 * i + 1) for i in range(n)] + [(2 * u + 1, 2 * v) for u, v in edges]
    net = IncrementalMinCut(2 * n, arcs, 2 * src, 2 * snk + 1)
    num_arcs = len(arcs)
    edge_u = np.array([u for u, _ in edges], dtype=np.int64)
    edge_v = np.array([v for _, v in edges], dtype=np.int64)
    active = np.zeros(num_arcs, dtype=bool)

    cpm = _CriticalPath(dag)
    dur = list(lo)
    min_time = cpm.run(dur)
    dur = list(hi)
    cur_time = cpm.run(dur)

    if max_steps is not None and cur_time - min_time > max_steps:
        raise ProblemTooLargeError(
            f"the frontier would have about {cur_time - min_time} points (iteration time "
            f"{min_time}..{cur_time} units); the limit is {max_steps} — use a larger unit time"
        )
    trace = SolverTrace(start_durations=list(dur[:n_ops]), max_quant_time=cur_time, min_quant_time=min_time)
    total_cost = sum(cost_tab[i][dur[i] - lo[i]] for i in range(n_ops))
    if settings.report_start:
        trace.quant_times.append(cur_time)
        trace.costs_j.append(total_cost)
        trace.cost_changes_j.append(0.0)
        trace.delta_ptr.append(0)
    total_estimate = max(cur_time - min_time, 1)
    last_report = started
    changed_ops: list[int] = []
    dummy_op = [False] * n
    dummy_op[src] = dummy_op[snk] = True

    def bounds(i: int) -> tuple[int, int]:
        if dummy_op[i]:
            return 0, inf
        k = dur[i] - lo[i]
        return lb_tab[i][k], ub_tab[i][k]

    while True:
        # 1. Critical subgraph, updated incrementally in the flow network.
        finish = np.array(cpm.finish, dtype=np.int64)
        tail = np.array(cpm.tail, dtype=np.int64)
        d_arr = np.array(dur, dtype=np.int64)
        crit_op = finish + tail - d_arr == cur_time
        crit_edge = finish[edge_u] + tail[edge_v] == cur_time
        new_active = np.concatenate((crit_op, crit_edge))
        flipped = np.flatnonzero(new_active != active).tolist()
        active = new_active
        for a in flipped:
            if not active[a]:
                net.deactivate(a)
            elif a < n:
                b_lo, b_hi = bounds(a)
                net.set_bounds(a, b_lo, b_hi)
            else:
                net.set_bounds(a, 0, inf)
        for i in changed_ops:
            if active[i]:
                b_lo, b_hi = bounds(i)
                net.set_bounds(i, b_lo, b_hi)

        # 2.–3. Minimum cut.
        if not net.solve():
            trace.stop_reason = "no feasible flow (rounded bounds are inconsistent)"
            break
        speed, slow = net.cut_arcs()
        stop = ""
        if not speed:
            trace.stop_reason = "no computation to speed up"
            break
        cost_change = 0.0
        for a in speed:
            if a >= n or dummy_op[a]:
                stop = "the cheapest cut crosses a dependency"
                break
            if dur[a] - 1 < lo[a]:
                stop = "the cheapest cut crosses a computation at its fastest option"
                break
            k = dur[a] - lo[a]
            cost_change += abs(cost_tab[a][k - 1] - cost_tab[a][k])
        if not stop:
            for a in slow:
                if a >= n or dummy_op[a]:
                    continue
                if dur[a] + 1 > hi[a]:
                    stop = "the cheapest cut slows a computation beyond its slowest option"
                    break
                k = dur[a] - lo[a]
                cost_change -= abs(cost_tab[a][k] - cost_tab[a][k + 1])
        if stop:
            trace.stop_reason = stop
            break
        if settings.stop_on_flat_step and abs(cost_change) < LOWTIME_FP_ERROR:
            trace.stop_reason = "a step changed the cost by less than 1e-6 J"
            break

        # 4. Apply the step.
        changed_ops = []
        for a in speed:
            k = dur[a] - lo[a]
            total_cost += cost_tab[a][k - 1] - cost_tab[a][k]
            dur[a] -= 1
            changed_ops.append(a)
            trace.delta_ops.append(a)
            trace.delta_signs.append(-1)
        for a in slow:
            if a >= n or dummy_op[a]:
                continue
            k = dur[a] - lo[a]
            total_cost += cost_tab[a][k + 1] - cost_tab[a][k]
            dur[a] += 1
            changed_ops.append(a)
            trace.delta_ops.append(a)
            trace.delta_signs.append(1)
        trace.delta_ptr.append(len(trace.delta_ops))
        cur_time = cpm.run(dur)
        trace.quant_times.append(cur_time)
        trace.costs_j.append(total_cost)
        trace.cost_changes_j.append(cost_change)

        if progress is not None:
            now = _time.perf_counter()
            if now - last_report >= progress_interval_s:
                last_report = now
                progress(trace.max_quant_time - cur_time, total_estimate)

    if progress is not None:
        progress(total_estimate, total_estimate)
    trace.elapsed_s = _time.perf_counter() - started
    return trace

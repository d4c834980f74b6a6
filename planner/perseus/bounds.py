"""Flow bounds: the marginal costs the min-cut solver works with.

For a computation currently planned at ``d`` units, the Phillips–Dessouky network needs

* ``ub`` — the extra cost of speeding it up by one unit, ``c(d−1) − c(d)``, or "infinite" if ``d``
  is already its fastest duration (it must not be crossed forwards by a cut);
* ``lb`` — the saving from slowing it down by one unit, ``c(d) − c(d+1)``, or 0 if ``d`` is already
  its slowest duration.

The solver keeps bounds as integers in micro-units (1e-6 J). This module tabulates them for every
duration of one kind of computation, in the two flavours of :mod:`~planner.perseus.solver`.
"""

from __future__ import annotations

from planner.perseus.cost_model import ConvexHullCostModel, ExponentialCostModel
from planner.perseus.options import CandidateOptions
from planner.perseus.solver import DEFAULT_INF_UNITS, LOWTIME_FP_ERROR, LOWTIME_INF, DurationTable


def lowtime_table(options: CandidateOptions, model: ExponentialCostModel) -> DurationTable:
    """Bounds exactly as lowtime 0.3.0's ``PhillipsDessouky.annotate_capacities`` computes them.

    Interior durations get 1e-6 J of extra room on ``ub`` ("in case the cost model is almost
    linear"), and both bounds are floored to multiples of 1e-6 J — here, the multiple itself.
    """
    lo, hi = options.min_duration, options.max_duration
    costs = model.table(lo, hi)
    fp = LOWTIME_FP_ERROR
    lbs: list[int] = []
    ubs: list[int] = []
    for d in range(lo, hi + 1):
        k = d - lo
        if lo == hi:
            lb, ub = 0.0, LOWTIME_INF
        elif d - 1 < lo:
            lb, ub = abs(costs[k] - costs[k + 1]), LOWTIME_INF
        elif d + 1 > hi:
            lb, ub = 0.0, abs(costs[k - 1] - costs[k])
        else:
            lb, ub = abs(costs[k] - costs[k + 1]), abs(costs[k - 1] - costs[k]) + fp
        lbs.append(int(lb // fp))
        ubs.append(int(ub // fp))
    return DurationTable(lo=lo, hi=hi, cost_j=tuple(costs), lb_units=tuple(lbs), ub_units=tuple(ubs))


def hull_table(options: CandidateOptions, model: ConvexHullCostModel) -> DurationTable:
    """Bounds from the convex-hull model: exact integer micro-joule marginal costs.

    The marginal cost of each unit step is rounded to a whole micro-joule *once*, and both bounds
    are read from that one sequence, so ``lb(d) = ub(d+1)`` holds exactly and rounding can never
    make the flow problem infeasible. Rounding is monotone, so the marginals stay non-increasing
    in ``d`` (convex) and ``lb ≤ ub`` everywhere.
    """
    lo, hi = options.min_duration, options.max_duration
    costs = model.table(lo, hi)
    # marginal[k] = saving of going from lo + k to lo + k + 1 (k = 0 .. hi − lo − 1).
    marginal = [max(0, round((costs[k] - costs[k + 1]) * 1e6)) for k in range(hi - lo)]
    for k in range(1, len(marginal)):  # guard against float noise breaking monotonicity
        if marginal[k] > marginal[k - 1]:
            marginal[k] = marginal[k - 1]
    lbs: list[int] = []
    ubs: list[int] = []
    inf = DEFAULT_INF_UNITS
    for d in range(lo, hi + 1):
        k = d - lo
        lbs.append(marginal[k] if d < hi else 0)
        ubs.append(marginal[k - 1] if d > lo else inf)
    return DurationTable(lo=lo, hi=hi, cost_j=tuple(costs), lb_units=tuple(lbs), ub_units=tuple(ubs))

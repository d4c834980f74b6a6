"""The incremental min cut with lower bounds agrees with brute force after any sequence of updates."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from planner.perseus.mincut import IncrementalMinCut

Arc = tuple[int, int]


def _max_flow_lp(n: int, arcs: list[Arc], bounds: dict[int, tuple[int, int]], s: int, t: int) -> float | None:
    """Maximum s–t flow value with lower bounds by linear programming; None if infeasible."""
    active = sorted(bounds)
    if not active:
        return 0.0
    c = np.zeros(len(active))
    for j, a in enumerate(active):
        u, v = arcs[a]
        c[j] -= (u == s) - (v == s)
    rows = []
    for x in range(n):
        if x in (s, t):
            continue
        row = np.zeros(len(active))
        for j, a in enumerate(active):
            u, v = arcs[a]
            row[j] = (v == x) - (u == x)
        rows.append(row)
    a_eq = np.array(rows) if rows else None
    b_eq = np.zeros(len(rows)) if rows else None
    res = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=[bounds[a] for a in active], method="highs")
    if res.status == 2:
        return None
    assert res.status == 0, res.message
    return float(-res.fun)


def _minimal_min_cut(n: int, arcs: list[Arc], bounds: dict[int, tuple[int, int]], s: int, t: int) -> set[int]:
    """Intersection of all minimum cuts, by enumerating every source side."""
    others = [x for x in range(n) if x not in (s, t)]
    best: int | None = None
    sides: list[set[int]] = []
    for k in range(len(others) + 1):
        for combo in itertools.combinations(others, k):
            side = {s, *combo}
            cap = 0
            for a, (lb, ub) in bounds.items():
                u, v = arcs[a]
                if u in side and v not in side:
                    cap += ub
                elif v in side and u not in side:
                    cap -= lb
            if best is None or cap < best:
                best, sides = cap, [side]
            elif cap == best:
                sides.append(side)
    return set.intersection(*sides)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[Arc], list[list[tuple[int, int, int]]]]:
    n = draw(st.integers(3, 6))
    pairs = [(u, v) for u in range(n) for v in range(n) if u != v]
    arcs = draw(st.lists(st.sampled_from(pairs), min_size=2, max_size=10, unique=True))
    rounds = []
    for _ in range(draw(st.integers(1, 4))):
        updates = []
        for a in draw(st.lists(st.integers(0, len(arcs) - 1), min_size=1, max_size=len(arcs))):
            if draw(st.booleans()) or not rounds:
                lb = draw(st.integers(0, 6))
                updates.append((a, lb, lb + draw(st.integers(0, 8))))
            else:
                updates.append((a, -1, -1))  # remove the arc
        rounds.append(updates)
    return n, arcs, rounds


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_incremental_min_cut_matches_brute_force(scenario: tuple[int, list[Arc], list[list[tuple[int, int, int]]]]) -> None:
    n, arcs, rounds = scenario
    s, t = 0, n - 1
    net = IncrementalMinCut(n, arcs, s, t)
    bounds: dict[int, tuple[int, int]] = {}
    for updates in rounds:
        for a, lb, ub in updates:
            if lb < 0:
                net.deactivate(a)
                bounds.pop(a, None)
            else:
                net.set_bounds(a, lb, ub)
                bounds[a] = (lb, ub)
        feasible = net.solve()
        value = _max_flow_lp(n, arcs, bounds, s, t)
        assert feasible == (value is not None)
        if not feasible:
            return  # the network is left in an unspecified state after an infeasible solve
        # The flow respects every bound and conserves flow away from s and t.
        balance = [0] * n
        for a, (lb, ub) in bounds.items():
            f = net.flow(a)
            assert lb <= f <= ub
            balance[arcs[a][0]] -= f
            balance[arcs[a][1]] += f
        assert all(balance[x] == 0 for x in range(n) if x not in (s, t))
        assert -balance[s] == round(value)
        side = {x for x in range(n) if net.on_source_side(x)}
        assert side == _minimal_min_cut(n, arcs, bounds, s, t)

"""Minimum cut of a flow network with lower and upper bounds, kept up to date between solves.

Each Phillips–Dessouky step (:mod:`~planner.perseus.solver`) needs a minimum s–t cut of the
*critical* subgraph, where every arc carries a flow bound ``lb ≤ f ≤ ub``. With lower bounds the
capacity of a cut ``(S, T)`` is ``Σ ub(S→T) − Σ lb(T→S)``, and a minimum cut is found from a
maximum *feasible* flow: first a flow that respects every bound, then augmenting paths from s to t
in the residual graph (forward residual ``ub − f``, backward residual ``f − lb``). The source side
of the cut is the set of nodes still reachable from s.

Why the cut is well defined (and equals lowtime's): for any maximum flow, the set of nodes
reachable from s in its residual graph is the same — it is the *minimal* minimum cut, the
intersection of all minimum cuts. So any correct maximum-flow algorithm gives the cut lowtime's
two-phase Edmonds–Karp gives, provided the capacities are equal. lowtime floors every bound to a
multiple of 1e-6 before solving; here capacities are those multiples as exact integers
("micro-units"), so comparisons are exact instead of tested against a 1e-6 tolerance.

Between two steps the network changes only a little (a few durations change by one unit and a few
arcs enter or leave the critical subgraph), so the previous flow is kept and *repaired*:

1. Arcs that left the network drop their flow, arcs that joined start at their lower bound, and
   flows outside changed bounds are clamped. This can leave nodes with an excess (more flow in
   than out) or a deficit. (On pipeline DAGs it practically never does: a crashed computation's
   old flow already lies within its new bounds.)
2. Deficits are filled by augmenting paths from s, t or an excess node (s and t are free: an
   s–t flow may have any value); remaining excesses are drained to s or t the same way. If a
   deficit or excess cannot be routed, no feasible flow exists (lowtime raises; the solver stops).
3. Dinic's algorithm from s to t: a breadth-first search from s layers the residual graph, a
   depth-first search *backwards from t* (every hop one layer closer to s, so it meets almost no
   dead ends) pushes a blocking flow along shortest paths, and the search from s that no longer
   reaches t marks the source side.

Each arc is stored as two *half-arcs* — ``2a`` forward with residual ``ub − f``, ``2a + 1``
backward with residual ``f − lb`` — in flat Python lists; an arc outside the network has both
residuals at 0. At these sizes (a few thousand arcs) that is several times faster than converting
the network for a compiled library on every step.
"""

from __future__ import annotations


class IncrementalMinCut:
    """A flow network whose arcs can be switched on and off and re-bounded between solves.

    Args:
        num_nodes: Number of nodes (``0 .. num_nodes − 1``).
        arcs: ``(tail, head)`` of every arc that may ever be part of the network. Arc ``i`` is
            ``arcs[i]``; all start outside the network.
        source: The node s.
        sink: The node t.
    """

    def __init__(self, num_nodes: int, arcs: list[tuple[int, int]], source: int, sink: int) -> None:
        self.num_nodes = num_nodes
        self.source = source
        self.sink = sink
        m = len(arcs)
        self.tail = [u for u, _ in arcs]
        self.head = [v for _, v in arcs]
        self.lb = [0] * m
        self.ub = [0] * m
        self.active = [False] * m
        # Half-arc h: to[h] is where it leads, res[h] its residual capacity.
        self.to = [0] * (2 * m)
        self.res = [0] * (2 * m)
        self.adj: list[list[int]] = [[] for _ in range(num_nodes)]
        for a, (u, v) in enumerate(arcs):
            self.to[2 * a] = v
            self.to[2 * a + 1] = u
            self.adj[u].append(2 * a)
            self.adj[v].append(2 * a + 1)
        self.excess = [0] * num_nodes
        self._unbalanced: set[int] = set()
        self._mark = [0] * num_nodes
        self._stamp = 0
        self._parent = [0] * num_nodes
        self._level = [0] * num_nodes
        self._visited: list[int] = []
        self._reachable_stamp = 0

    # -- network updates ---------------------------------------------------------------------

    def flow(self, arc: int) -> int:
        """Current flow on an arc in the network (0 outside it)."""
        if not self.active[arc]:
            return 0
        return self.lb[arc] + self.res[2 * arc + 1]

    def _set(self, arc: int, lb: int, ub: int, flow: int, old_flow: int) -> None:
        self.res[2 * arc] = ub - flow
        self.res[2 * arc + 1] = flow - lb
        delta = flow - old_flow
        if delta:
            u = self.tail[arc]
            v = self.head[arc]
            self.excess[u] -= delta
            self.excess[v] += delta
            self._unbalanced.add(u)
            self._unbalanced.add(v)

    def deactivate(self, arc: int) -> None:
        """Remove an arc from the network (its flow is dropped and repaired at the next solve)."""
        if self.active[arc]:
            old = self.flow(arc)
            self.active[arc] = False
            self.lb[arc] = self.ub[arc] = 0
            self._set(arc, 0, 0, 0, old)

    def set_bounds(self, arc: int, lb: int, ub: int) -> None:
        """Put an arc in the network with bounds ``lb ≤ f ≤ ub`` (``0 ≤ lb ≤ ub``)."""
        if not self.active[arc]:
            self.active[arc] = True
            old = 0
            new = lb
        else:
            old = self.flow(arc)
            new = lb if old < lb else ub if old > ub else old
        self.lb[arc] = lb
        self.ub[arc] = ub
        self._set(arc, lb, ub, new, old)

    # -- searches ----------------------------------------------------------------------------

    def _bfs_path(self, starts: list[int], targets: set[int]) -> int:
        """Breadth-first search from ``starts`` to the first node in ``targets`` (−1 if none).

        Parents are recorded as the half-arc used to enter each node (−1 for a start).
        """
        self._stamp += 1
        stamp = self._stamp
        mark = self._mark
        parent = self._parent
        res = self.res
        to = self.to
        adj = self.adj
        queue = list(starts)
        for s in queue:
            mark[s] = stamp
            parent[s] = -1
        qi = 0
        while qi < len(queue):
            x = queue[qi]
            qi += 1
            for h in adj[x]:
                if res[h]:
                    y = to[h]
                    if mark[y] != stamp:
                        mark[y] = stamp
                        parent[y] = h
                        if y in targets:
                            return y
                        queue.append(y)
        return -1

    def _path_to(self, end: int) -> tuple[list[int], int, int]:
        """Half-arcs from the search's start to ``end``, the bottleneck and the start node."""
        parent = self._parent
        res = self.res
        to = self.to
        path: list[int] = []
        bottleneck = -1
        y = end
        while parent[y] >= 0:
            h = parent[y]
            path.append(h)
            r = res[h]
            if bottleneck < 0 or r < bottleneck:
                bottleneck = r
            y = to[h ^ 1]
        return path, bottleneck, y

    def _push(self, path: list[int], amount: int) -> None:
        res = self.res
        for h in path:
            res[h] -= amount
            res[h ^ 1] += amount

    # -- solving -----------------------------------------------------------------------------

    def _repair(self) -> bool:
        """Route every excess and deficit (steps 1–2 of the module docstring)."""
        s, t = self.source, self.sink
        excess = self.excess
        unbalanced = {x for x in self._unbalanced if excess[x] != 0 and x != s and x != t}
        self._unbalanced.clear()
        excess[s] = 0
        excess[t] = 0
        if not unbalanced:
            return True
        deficits = {x for x in unbalanced if excess[x] < 0}
        surplus = {x for x in unbalanced if excess[x] > 0}
        while deficits:
            end = self._bfs_path([s, t, *sorted(surplus)], deficits)
            if end < 0:
                return False
            path, bottleneck, origin = self._path_to(end)
            amount = min(-excess[end], bottleneck)
            if origin in surplus:
                amount = min(amount, excess[origin])
                excess[origin] -= amount
                if excess[origin] == 0:
                    surplus.discard(origin)
            self._push(path, amount)
            excess[end] += amount
            if excess[end] == 0:
                deficits.discard(end)
        while surplus:
            progress = False
            for x in sorted(surplus):
                while excess[x] > 0:
                    end = self._bfs_path([x], {s, t})
                    if end < 0:
                        break
                    path, bottleneck, _ = self._path_to(end)
                    amount = min(bottleneck, excess[x])
                    self._push(path, amount)
                    excess[x] -= amount
                    progress = True
                if excess[x] == 0:
                    surplus.discard(x)
            if surplus and not progress:
                return False
        excess[s] = 0
        excess[t] = 0
        return True

    def _reaches_sink(self) -> bool:
        """Breadth-first search from s, recording ``_level[x]`` = hops from s; True once t is found.

        When t is found, every node closer to s than t already has its level. When t is not
        reachable, every node reached is marked with the current stamp and listed in
        ``_visited``: that is the source side of the minimal minimum cut.
        """
        self._stamp += 1
        stamp = self._stamp
        mark = self._mark
        level = self._level
        res = self.res
        to = self.to
        adj = self.adj
        s, t = self.source, self.sink
        mark[s] = stamp
        level[s] = 0
        queue = [s]
        qi = 0
        while qi < len(queue):
            x = queue[qi]
            qi += 1
            lx = level[x] + 1
            for h in adj[x]:
                if res[h]:
                    y = to[h]
                    if mark[y] != stamp:
                        mark[y] = stamp
                        level[y] = lx
                        if y == t:
                            return True
                        queue.append(y)
        self._visited = queue
        self._reachable_stamp = stamp
        return False

    def _blocking_flow(self) -> None:
        """Push flow along shortest s–t paths of the current layering until none is left.

        The search runs *backwards* from t: from a node at level ℓ it steps to a node at level
        ℓ − 1 over a residual arc. Every node with a level has such a neighbour (its parent in the
        breadth-first search), so the search meets dead ends only where augmentations saturated
        arcs. Current-arc pointers make each arc tried once per phase, and after an augmentation
        the search resumes from the saturated arc closest to t.
        """
        stamp = self._stamp
        mark = self._mark
        level = self._level
        res = self.res
        to = self.to
        adj = self.adj
        s, t = self.source, self.sink
        it = [0] * self.num_nodes
        # path holds half-arcs g leaving the current node towards s; the residual arc used
        # by the flow is the twin g ^ 1, entering the current node.
        path: list[int] = []
        x = t
        while True:
            if x == s:
                bottleneck = min(res[g ^ 1] for g in path)
                cut_at = -1
                for j, g in enumerate(path):
                    h = g ^ 1
                    r = res[h] - bottleneck
                    res[h] = r
                    res[g] += bottleneck
                    if r == 0 and cut_at < 0:
                        cut_at = j
                # Resume from the end of the saturated arc nearest t.
                x = to[path[cut_at] ^ 1]
                del path[cut_at:]
                continue
            arcs = adj[x]
            want = level[x] - 1
            i = it[x]
            n_arcs = len(arcs)
            while i < n_arcs:
                g = arcs[i]
                if res[g ^ 1]:
                    y = to[g]
                    if mark[y] == stamp and level[y] == want:
                        break
                i += 1
            it[x] = i
            if i < n_arcs:
                g = arcs[i]
                path.append(g)
                x = to[g]
            else:
                if not path:
                    return
                g = path.pop()
                x = to[g ^ 1]
                it[x] += 1

    def solve(self) -> bool:
        """Make the flow feasible and maximum; mark the source side. False if infeasible."""
        if not self._repair():
            return False
        while self._reaches_sink():
            self._blocking_flow()
        return True

    def cut_arcs(self) -> tuple[list[int], list[int]]:
        """Arcs in the network crossing the last cut: ``(source side → sink side, sink side → source side)``."""
        forward: list[int] = []
        backward: list[int] = []
        mark = self._mark
        stamp = self._reachable_stamp
        active = self.active
        adj = self.adj
        to = self.to
        for x in self._visited:
            for h in adj[x]:
                a = h >> 1
                if active[a] and mark[to[h]] != stamp:
                    if h & 1:
                        backward.append(a)
                    else:
                        forward.append(a)
        return forward, backward

    def on_source_side(self, node: int) -> bool:
        """Whether ``node`` was reachable from s after the last :meth:`solve`."""
        return self._mark[node] == self._reachable_stamp

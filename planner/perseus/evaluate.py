"""Discrete re-evaluation: what a frequency plan really costs, with the profiled numbers.

The solver plans in a model: durations are whole units of τ and costs come from a fitted curve.
To see what a plan would *realise*, run it through the profile itself:

* every computation takes the profiled time ``t_i`` and energy ``e_i`` at its planned frequency;
* the iteration time ``T`` is the exact longest path of the DAG with those times;
* the iteration energy is ``Σ e_i + P_blocking·(S·T − Σ t_i)``: every GPU-second not spent
  computing is spent blocking.

If a straggler stretches the iteration to ``T′ ≥ T``, the energy is the same formula with ``T′``
(:meth:`Evaluation.energy_at`).

:func:`timeline` lays a plan out in time (start, end, frequency, criticality of every computation)
for drawing, either as realised or as planned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from planner.perseus.dag import PipelineDag
from planner.perseus.frontier import Frontier
from planner.perseus.profile import Profile

CRITICAL_TOLERANCE_S = 1e-9


@dataclass(frozen=True)
class Evaluation:
    """Realised figures of one plan (see module docstring)."""

    time_s: float
    """Iteration time: the DAG's longest path with the profiled times."""
    compute_energy_j: float
    """Σ e_i over all computations."""
    busy_time_s: float
    """Σ t_i over all computations (GPU-seconds spent computing)."""
    num_stages: int
    p_blocking_w: float

    @property
    def energy_j(self) -> float:
        """Iteration energy including blocking, at the plan's own iteration time."""
        return self.energy_at(self.time_s)

    def energy_at(self, iteration_time_s: float) -> float:
        """Energy when the iteration lasts ``iteration_time_s`` (never less than the plan's own time)."""
        t = max(iteration_time_s, self.time_s)
        return self.compute_energy_j + self.p_blocking_w * (self.num_stages * t - self.busy_time_s)


def _lookup(profile: Profile, dag: PipelineDag, freqs: Sequence[int]) -> tuple[list[float], list[float]]:
    if len(freqs) != dag.num_computations:
        raise ValueError(f"expected {dag.num_computations} frequencies, got {len(freqs)}")
    times: list[float] = []
    energies: list[float] = []
    cache: dict[tuple[int, str], dict[int, tuple[float, float]]] = {}
    for comp, f in zip(dag.computations, freqs, strict=True):
        key = (comp.stage, comp.instruction)
        table = cache.get(key)
        if table is None:
            entry = profile.get(*key)
            table = {fm: (t, e) for fm, t, e in zip(entry.freq_mhz, entry.time_s, entry.energy_j, strict=True)}
            cache[key] = table
        if f not in table:
            profile.get(*key).at(f)  # raises a ProfileError naming the frequency
        t, e = table[f]
        times.append(t)
        energies.append(e)
    return times, energies


def _finish_times(dag: PipelineDag, durations: Sequence[float]) -> list[float]:
    finish = [0.0] * dag.num_nodes
    preds = dag.preds
    n = dag.num_computations
    for v in dag.topo_order:
        start = max((finish[p] for p in preds[v]), default=0.0)
        finish[v] = start + (durations[v] if v < n else 0.0)
    return finish


def evaluate_frequencies(
    profile: Profile, dag: PipelineDag, freqs: Sequence[int], p_blocking_w: float
) -> Evaluation:
    """Realised time and energy of a plan given as one frequency per computation (DAG numbering)."""
    times, energies = _lookup(profile, dag, freqs)
    finish = _finish_times(dag, times)
    return Evaluation(
        time_s=finish[dag.sink],
        compute_energy_j=float(sum(energies)),
        busy_time_s=float(sum(times)),
        num_stages=dag.num_stages,
        p_blocking_w=p_blocking_w,
    )


def evaluate_all_max(profile: Profile, dag: PipelineDag, p_blocking_w: float) -> Evaluation:
    """Realised figures of the baseline: every computation at the highest profiled frequency."""
    return evaluate_frequencies(profile, dag, [profile.max_freq_mhz] * dag.num_computations, p_blocking_w)


def evaluate_point(frontier: Frontier, profile: Profile, index: int) -> Evaluation:
    """Realised figures of frontier point ``index``."""
    return evaluate_frequencies(profile, frontier.dag, frontier.frequencies(index), frontier.problem.p_blocking_w)


def realised_frontier(frontier: Frontier, profile: Profile, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Realised ``(time_s, energy_j)`` of every frontier point, vectorised over batches of points."""
    dag = frontier.dag
    n = dag.num_computations
    p = frontier.problem
    # Per computation: time and energy of the option chosen at every duration lo .. hi.
    offsets = np.zeros(n, dtype=np.int64)
    lows = np.zeros(n, dtype=np.int64)
    flat_t: list[float] = []
    flat_e: list[float] = []
    spec_offset: dict[tuple[int, str], tuple[int, int]] = {}
    for i, comp in enumerate(dag.computations):
        key = (comp.stage, comp.instruction)
        if key not in spec_offset:
            opts = frontier.options[key]
            entry = profile.get(*key)
            measured = {f: (t, e) for f, t, e in zip(entry.freq_mhz, entry.time_s, entry.energy_j, strict=True)}
            spec_offset[key] = (len(flat_t), opts.min_duration)
            for d in range(opts.min_duration, opts.max_duration + 1):
                t, e = measured[opts.freq_mhz[opts.option_for(d)]]
                flat_t.append(t)
                flat_e.append(e)
        offsets[i], lows[i] = spec_offset[key]
    table_t = np.array(flat_t)
    table_e = np.array(flat_e)
    base = offsets - lows

    k_total = len(frontier)
    out_t = np.empty(k_total)
    out_e = np.empty(k_total)
    preds = dag.preds
    for k0 in range(0, k_total, batch):
        k1 = min(k_total, k0 + batch)
        d0 = frontier.durations(k0)
        lo_ptr = int(frontier.delta_ptr[k0 + 1])
        hi_ptr = int(frontier.delta_ptr[k1])
        delta = np.zeros((k1 - k0, n), dtype=np.int64)
        if hi_ptr > lo_ptr:
            counts = np.diff(frontier.delta_ptr[k0 + 1 : k1 + 1])
            rows = np.repeat(np.arange(1, k1 - k0), counts)
            np.add.at(delta, (rows, frontier.delta_ops[lo_ptr:hi_ptr]), frontier.delta_signs[lo_ptr:hi_ptr])
        durations = d0[None, :] + np.cumsum(delta, axis=0)
        idx = base[None, :] + durations
        times = table_t[idx].T.copy()  # (n, batch): one contiguous row per computation
        energies = table_e[idx]
        finish = np.zeros((dag.num_nodes, k1 - k0))
        for v in dag.topo_order:
            ps = preds[v]
            if ps:
                start = finish[ps[0]]
                for q in ps[1:]:
                    start = np.maximum(start, finish[q])
                finish[v] = start + times[v] if v < n else start
        t_iter = finish[dag.sink]
        out_t[k0:k1] = t_iter
        out_e[k0:k1] = energies.sum(axis=1) + p.p_blocking_w * (p.num_stages * t_iter - times.sum(axis=0))
    return out_t, out_e


@dataclass(frozen=True)
class TimelineEntry:
    """One computation laid out in time, for drawing a pipeline timeline."""

    stage: int
    order: int
    instruction: str
    microbatch: int
    freq_mhz: int
    start_s: float
    end_s: float
    critical: bool
    """On a longest path: slowing it would lengthen the iteration."""


def timeline(frontier: Frontier, profile: Profile | None, index: int, *, basis: str = "realised") -> list[TimelineEntry]:
    """Per-stage timeline of frontier point ``index``.

    ``basis="realised"`` uses the profiled times at the planned frequencies (needs ``profile``);
    ``basis="planned"`` uses the planned durations (whole units of τ). Computations start as soon
    as their dependencies allow; ``critical`` marks zero slack.
    """
    dag = frontier.dag
    freqs = frontier.frequencies(index)
    if basis == "realised":
        if profile is None:
            raise ValueError("a realised timeline needs the profile")
        durations, _ = _lookup(profile, dag, freqs)
        tol = CRITICAL_TOLERANCE_S
    elif basis == "planned":
        tau = frontier.problem.unit_time_s
        durations = [float(d) * tau for d in frontier.durations(index)]
        tol = tau * 1e-6
    else:
        raise ValueError(f"basis must be 'realised' or 'planned', got {basis!r}")
    finish = _finish_times(dag, durations)
    total = finish[dag.sink]
    # Latest finish by a backward pass.
    n = dag.num_computations
    latest = [total] * dag.num_nodes
    for v in reversed(dag.topo_order):
        succ = dag.succs[v]
        if succ:
            latest[v] = min(latest[s] - (durations[s] if s < n else 0.0) for s in succ)
    out: list[TimelineEntry] = []
    for stage, ops in enumerate(dag.stage_ops):
        for order, i in enumerate(ops):
            comp = dag.computations[i]
            out.append(
                TimelineEntry(
                    stage=stage,
                    order=order,
                    instruction=comp.instruction,
                    microbatch=comp.microbatch,
                    freq_mhz=freqs[i],
                    start_s=finish[i] - durations[i],
                    end_s=finish[i],
                    critical=abs(latest[i] - finish[i]) <= tol,
                )
            )
    return out

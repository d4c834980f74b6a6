"""Straggler-aware plan choice: remove extrinsic energy bloat.

With data parallelism every pipeline waits for the slowest one at the end of an iteration. When a
straggler (a throttled GPU, a slow node) stretches the iteration to ``T′``, the other pipelines
finish early and block at P_blocking until ``T′``. Perseus answers by running them on the plan with
planned time ``≤ T′`` that uses the least energy *including the blocking up to T′*:

    E(T′) = Σ cost_i + S·T′·P_blocking

For a fixed ``T′`` the second term is the same for every plan, so the choice is the point with the
lowest cost among those no slower than ``T′`` (ties go to the faster point). Without a
straggler, ``T′`` is the all-maximum-frequency time and the choice is the fastest point, which
removes *intrinsic* bloat (non-critical computations running faster than they need to).

The choice is made on the *realised* figures by default: every frontier point is re-evaluated
with the profiled times and energies (:func:`~planner.perseus.evaluate.realised_frontier`),
and the plan must really finish by ``T′``. The model's planned figures can be used instead
(``basis="planned"``, what the Perseus artifact's evaluation does); with the lowtime mode's
rounded-down durations a plan chosen that way can realise slightly slower than ``T′``.

The saving is reported against the baseline that runs everything at the highest frequency and
blocks until ``T′``, both on the model's figures and on the discrete re-evaluation
(:mod:`~planner.perseus.evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.perseus.errors import StragglerError
from planner.perseus.evaluate import Evaluation, evaluate_all_max, evaluate_point, realised_frontier
from planner.perseus.frontier import Frontier
from planner.perseus.profile import Profile


@dataclass(frozen=True)
class StragglerChoice:
    """The chosen plan for a straggler time and what it saves."""

    straggler_time_s: float
    index: int
    """Frontier point chosen."""
    planned_time_s: float
    planned_energy_j: float
    """Model energy of the plan with blocking up to ``straggler_time_s``."""
    realised: Evaluation
    """Discrete re-evaluation of the chosen plan."""
    baseline: Evaluation
    """Discrete evaluation of running everything at the highest frequency."""
    meets_time: bool = True
    """Whether the chosen plan's realised time is within the straggler time."""

    @property
    def realised_energy_j(self) -> float:
        """Realised energy of the plan with blocking up to the straggler time."""
        return self.realised.energy_at(self.straggler_time_s)

    @property
    def baseline_energy_j(self) -> float:
        """Realised energy of the all-max baseline with blocking up to the straggler time."""
        return self.baseline.energy_at(self.straggler_time_s)

    @property
    def saving_j(self) -> float:
        """Energy saved per iteration against the baseline (realised figures)."""
        return self.baseline_energy_j - self.realised_energy_j

    @property
    def saving_fraction(self) -> float:
        """:attr:`saving_j` as a fraction of the baseline's energy."""
        return self.saving_j / self.baseline_energy_j

    def summary(self) -> dict[str, float | int | bool]:
        """Figures as a flat JSON-ready dict."""
        return {
            "straggler_time_s": self.straggler_time_s,
            "point": self.index,
            "planned_time_s": self.planned_time_s,
            "planned_energy_j": self.planned_energy_j,
            "realised_time_s": self.realised.time_s,
            "realised_energy_j": self.realised_energy_j,
            "baseline_time_s": self.baseline.time_s,
            "baseline_energy_j": self.baseline_energy_j,
            "saving_j": self.saving_j,
            "saving_fraction": self.saving_fraction,
            "meets_time": self.meets_time,
        }


def choose_index(frontier: Frontier, straggler_time_s: float) -> int:
    """Planned basis: the cheapest point (blocking to ``straggler_time_s`` included) whose *planned*
    time is no slower than it; ties go to the faster point."""
    times = frontier.time_s
    eligible = np.flatnonzero(times <= straggler_time_s + 1e-12)
    if len(eligible) == 0:
        fastest = float(times[-1]) if len(times) else float("nan")
        raise StragglerError(
            f"no plan meets a straggler time of {straggler_time_s} s; the fastest plan takes {fastest} s"
        )
    costs = frontier.costs_j[eligible]
    best = costs.min()
    return int(eligible[np.flatnonzero(costs <= best + 1e-9 * max(1.0, abs(best)))[-1]])


def choose_index_realised(
    frontier: Frontier,
    profile: Profile,
    straggler_time_s: float,
    realised: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[int, bool]:
    """Realised basis: the point with the least *realised* energy at ``straggler_time_s`` among those
    whose realised time is no slower than it; ties go to the faster point.

    Returns ``(index, meets_time)``; when no point realises the time, the point with the shortest
    realised time and ``False``. ``realised`` may pass :func:`realised_frontier`'s result to reuse it.
    """
    times, energies = realised if realised is not None else realised_frontier(frontier, profile)
    p = frontier.problem
    eligible = np.flatnonzero(times <= straggler_time_s * (1 + 1e-12))
    if len(eligible) == 0:
        return int(np.argmin(times)), False
    at_t = energies[eligible] + p.p_blocking_w * p.num_stages * (straggler_time_s - times[eligible])
    best = at_t.min()
    candidates = eligible[at_t <= best + 1e-9 * max(1.0, abs(best))]
    return int(candidates[np.argmin(times[candidates])]), True


def choose_for_straggler(
    frontier: Frontier,
    profile: Profile,
    straggler_time_s: float | None = None,
    *,
    basis: str = "realised",
    realised: tuple[np.ndarray, np.ndarray] | None = None,
) -> StragglerChoice:
    """Choose the plan for a straggler's iteration time (see module docstring).

    ``basis="realised"`` (default) chooses on the discrete re-evaluation of every point, so the
    chosen plan really finishes by ``T′`` in the profile's numbers; ``basis="planned"`` chooses on
    the model's figures (what the Perseus artifact does).

    ``straggler_time_s=None`` means no straggler: ``T′`` is the baseline's own iteration time (with
    ``basis="planned"``, the fastest planned time if that is longer). When no plan realises ``T′`` —
    with a coarse τ, rounding can make every plan a little slower than all-max — the fastest plan is
    chosen and ``meets_time`` is ``False``; a finer τ helps.

    Raises:
        StragglerError: ``T′`` is shorter than running everything at the highest frequency, or
            (planned basis) than the fastest planned point.
    """
    baseline = evaluate_all_max(profile, frontier.dag, frontier.problem.p_blocking_w)
    if straggler_time_s is None:
        straggler_time_s = baseline.time_s
        if basis == "planned":
            straggler_time_s = max(straggler_time_s, float(frontier.time_s[-1]))
    elif straggler_time_s < baseline.time_s * (1 - 1e-9):
        raise StragglerError(
            f"a straggler time of {straggler_time_s} s is shorter than the all-maximum-frequency "
            f"iteration time ({baseline.time_s:.6g} s); a straggler can only be slower"
        )
    if basis == "realised":
        k, meets = choose_index_realised(frontier, profile, straggler_time_s, realised)
    elif basis == "planned":
        k, meets = choose_index(frontier, straggler_time_s), True
    else:
        raise ValueError(f"basis must be 'realised' or 'planned', got {basis!r}")
    evaluation = evaluate_point(frontier, profile, k)
    if basis == "planned":
        meets = evaluation.time_s <= straggler_time_s * (1 + 1e-12)
    p = frontier.problem
    planned = float(frontier.costs_j[k]) + p.num_stages * max(straggler_time_s, float(frontier.time_s[k])) * p.p_blocking_w
    return StragglerChoice(
        straggler_time_s=straggler_time_s,
        index=k,
        planned_time_s=float(frontier.time_s[k]),
        planned_energy_j=planned,
        realised=evaluation,
        baseline=baseline,
        meets_time=meets,
    )

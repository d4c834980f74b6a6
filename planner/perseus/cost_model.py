"""Cost models: a continuous cost for every integer duration of an instruction.

The time–cost solver needs, for every computation, the cost of running it for ``d`` units of τ
for every integer ``d`` between its fastest and slowest option, and it needs those costs to be
*convex* in ``d`` (each extra unit of time saves no more than the previous one did): then
crashing one unit at a time along minimum cuts is optimal (Phillips & Dessouky, 1977). Profiled
options only exist at a few durations, so a model fills the gaps.

``ExponentialCostModel`` (``lowtime`` mode)
    lowtime 0.3.0's ``ExponentialModel``: ``cost(d) = a·exp(b·d) + c`` fitted with
    ``scipy.optimize.curve_fit(maxfev=50000)`` from each of 54 initial guesses
    (a ∈ {10, 100, 1000}, b ∈ {−k·τ/1 ms : k ∈ {.01,.02,.03,.04,.05,.1}}, c ∈ {10, 100, 1000});
    fits whose covariance is infinite or whose ``a`` is negative (not convex) are discarded and the
    one with the lowest mean squared error wins. Evaluated exactly as lowtime evaluates it, so the
    costs agree bit for bit.

``ConvexHullCostModel`` (``default`` mode)
    The lower convex envelope of the options' (duration, cost) points, linearly interpolated
    between its vertices. It passes exactly through every option on the envelope (the exponential
    fit misses options by 0.1–0.3 J on 25–45 J computations of the GPT-3 profile), cannot fail to
    fit, and costs nothing to build.
"""

from __future__ import annotations

import functools
import itertools
import warnings
from dataclasses import dataclass

import numpy as np

from planner.perseus.errors import PlannerError
from planner.perseus.options import CandidateOptions


def _exp_fn(t: np.ndarray | int, a: float, b: float, c: float) -> np.ndarray:
    return a * np.exp(b * t) + c


@functools.lru_cache(maxsize=256)
def _fit_exponential(
    quant_times: tuple[int, ...], costs: tuple[float, ...], unit_time_s: float
) -> tuple[np.float64, np.float64, np.float64] | None:
    """lowtime's grid search (``search_strategy="best"``); ``None`` when nothing fits.

    Cached on its inputs: stages with identical profiles share one fit, as they share one result.
    """
    # Imported here, not with the module: every process that loads the app imports this package (the plans'
    # models use its options), and scipy.optimize is a third of the telemetry consumer's start-up.
    from scipy.optimize import OptimizeWarning, curve_fit

    xs = np.array(list(quant_times))
    ys = np.array(list(costs))
    a_candidates = [1e1, 1e2, 1e3]
    b_candidates = [-c * unit_time_s / 0.001 for c in [0.01, 0.02, 0.03, 0.04, 0.05, 0.1]]
    c_candidates = [1e1, 1e2, 1e3]

    best_error = np.inf
    best: tuple[np.float64, np.float64, np.float64] | None = None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", OptimizeWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        for a, b, c in itertools.product(a_candidates, b_candidates, c_candidates):
            try:
                (opt_a, opt_b, opt_c), pcov = curve_fit(_exp_fn, xs, ys, p0=[a, b, c], maxfev=50000)
            except (RuntimeError, ValueError, TypeError):
                # lowtime would crash here; an initial guess that fails simply does not count.
                continue
            if np.inf in pcov:
                continue
            preds = np.array([_exp_fn(t, opt_a, opt_b, opt_c) for t in xs])
            error = np.mean(np.square(ys - preds)).item()
            if error == np.inf:
                continue
            if opt_a < 0.0:
                continue
            if error < best_error:
                best = (opt_a, opt_b, opt_c)
                best_error = error
    return best


@dataclass(frozen=True)
class ExponentialCostModel:
    """``cost(d) = a·exp(b·d) + c``, fitted like lowtime 0.3.0 (see module docstring)."""

    a: float
    b: float
    c: float
    _coefficients: tuple[np.float64, np.float64, np.float64]

    @classmethod
    def fit(cls, options: CandidateOptions) -> ExponentialCostModel:
        """Fit the model to ``options`` (quantised time → effective energy)."""
        result = _fit_exponential(options.quant_time, options.cost_j, options.unit_time_s)
        if result is None:
            raise PlannerError(
                f"stage {options.stage} {options.instruction}: the exponential cost model of the lowtime "
                f"compatibility mode does not fit its {len(options.quant_time)} Pareto-optimal option(s) "
                "(lowtime itself would fail here); use the default mode"
            )
        return cls(float(result[0]), float(result[1]), float(result[2]), result)

    def __call__(self, duration: int) -> float:
        """Cost at an integer duration, computed with lowtime's exact floating-point operations."""
        a, b, c = self._coefficients
        return float(a * np.exp(b * duration) + c)

    def table(self, lo: int, hi: int) -> list[float]:
        """Costs at durations ``lo .. hi`` inclusive."""
        a, b, c = self._coefficients
        return [float(a * np.exp(b * d) + c) for d in range(lo, hi + 1)]


@dataclass(frozen=True)
class ConvexHullCostModel:
    """Piecewise-linear lower convex envelope of the options (see module docstring)."""

    vertex_durations: tuple[int, ...]
    """Durations of the envelope's vertices, ascending."""
    vertex_costs: tuple[float, ...]

    @classmethod
    def fit(cls, options: CandidateOptions) -> ConvexHullCostModel:
        """Build the envelope of ``options`` (quantised time → effective energy)."""
        points = sorted(zip(options.quant_time, options.cost_j, strict=True))
        hull: list[tuple[int, float]] = []
        for x, y in points:
            while len(hull) >= 2:
                (x1, y1), (x2, y2) = hull[-2], hull[-1]
                # Drop the middle point if it lies on or above the segment from hull[-2] to (x, y).
                if (y2 - y1) * (x - x1) >= (y - y1) * (x2 - x1):
                    hull.pop()
                else:
                    break
            hull.append((x, y))
        return cls(tuple(x for x, _ in hull), tuple(y for _, y in hull))

    def __call__(self, duration: int) -> float:
        """Cost at an integer duration inside the envelope's range."""
        xs = self.vertex_durations
        ys = self.vertex_costs
        if duration <= xs[0]:
            return ys[0]
        if duration >= xs[-1]:
            return ys[-1]
        i = int(np.searchsorted(xs, duration, side="right"))
        x1, x2, y1, y2 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        if duration == x1:
            return y1
        return y1 + (y2 - y1) * (duration - x1) / (x2 - x1)

    def table(self, lo: int, hi: int) -> list[float]:
        """Costs at durations ``lo .. hi`` inclusive."""
        return [float(v) for v in np.interp(np.arange(lo, hi + 1), self.vertex_durations, self.vertex_costs)]


CostModel = ExponentialCostModel | ConvexHullCostModel


def clear_fit_cache() -> None:
    """Forget cached exponential fits (benchmarks call this to time the fit honestly)."""
    _fit_exponential.cache_clear()

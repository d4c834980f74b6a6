"""Choosing when to run in an hourly intensity series (Wiesner et al., "Let's Wait Awhile", 2021).

A run needs ``n`` hours of work (the last hour may be partial: its ``weight`` is below 1).

* **Non-interruptible** runs take ``n`` consecutive hours: the best start minimises the weighted sum
  (equivalently the rolling mean) of intensity over the window.
* **Interruptible** runs (checkpointing, can pause) take the ``n`` cleanest hours anywhere before the
  deadline; the partial hour goes to the dirtiest of the chosen hours.

Both functions work on plain lists: index ``i`` is the ``i``-th hour after the window opens.
"""

from __future__ import annotations

from collections.abc import Sequence


def hour_weights(duration_h: float) -> list[float]:
    """Per-hour share of a run lasting ``duration_h`` hours: 1.0 for each full hour, the rest last."""
    if duration_h <= 0:
        raise ValueError(f"duration_h must be positive, got {duration_h!r}")
    full = int(duration_h)
    rest = duration_h - full
    weights = [1.0] * full
    if rest > 1e-9:
        weights.append(rest)
    return weights


def contiguous_sums(intensity: Sequence[float], weights: Sequence[float], n_starts: int) -> list[float]:
    """Weighted intensity sum for each start index ``0 … n_starts-1`` (window = ``len(weights)`` hours)."""
    span = len(weights)
    if n_starts < 1 or n_starts - 1 + span > len(intensity):
        raise ValueError("the series is too short for the windows asked for")
    return [sum(w * intensity[s + k] for k, w in enumerate(weights)) for s in range(n_starts)]


def cheapest_hours(
    intensity: Sequence[float], weights: Sequence[float], start: int = 0
) -> tuple[float, list[int]]:
    """The ``len(weights)`` cleanest hours at or after ``start``: (weighted sum, chosen indexes in time order).

    Ties go to the earlier hour, so equal grids finish sooner.
    """
    span = len(weights)
    candidates = list(range(start, len(intensity)))
    if span > len(candidates):
        raise ValueError("not enough hours before the deadline")
    chosen = sorted(candidates, key=lambda i: (intensity[i], i))[:span]
    by_cost = sorted(chosen, key=lambda i: (intensity[i], i))
    ordered_weights = sorted(weights, reverse=True)  # full hours to the cleanest, partial to the dirtiest
    total = sum(w * intensity[i] for w, i in zip(ordered_weights, by_cost, strict=True))
    return total, sorted(chosen)

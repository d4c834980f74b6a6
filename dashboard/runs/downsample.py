"""Min/mean/max bucketing: how a long series becomes about 2,000 drawable points without losing spikes.

Bucket means keep the area under the curve (energy) honest, and min/max keep the spikes a plain
every-Nth subsample would drop. Totals are never computed from these buckets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Buckets:
    t_ms: np.ndarray  # start of each non-empty bucket
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def empty(cls) -> Buckets:
        nothing = np.zeros(0)
        return cls(nothing.astype(np.int64), nothing, nothing, nothing)


def bucket_width_ms(span_ms: int, points: int, *, minimum_ms: int = 100) -> int:
    """The bucket width that draws a span in at most ``points`` buckets (never finer than ``minimum_ms``)."""
    return max(minimum_ms, -(-max(span_ms, 1) // max(points, 1)))


def bucket_samples(t_ms: np.ndarray, values: np.ndarray, start_ms: int, width_ms: int) -> Buckets:
    """Bucket raw samples (t sorted ascending) into fixed-width buckets starting at ``start_ms``."""
    if t_ms.size == 0:
        return Buckets.empty()
    index = (t_ms - start_ms) // width_ms
    keys, starts = np.unique(index, return_index=True)
    counts = np.diff(np.append(starts, index.size))
    values = values.astype(np.float64)
    return Buckets(
        t_ms=start_ms + keys * width_ms,
        mean=np.add.reduceat(values, starts) / counts,
        low=np.minimum.reduceat(values, starts),
        high=np.maximum.reduceat(values, starts),
    )

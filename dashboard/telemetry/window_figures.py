"""What GPU windows add up to, computed a block of windows at a time: the energy each interval counts, power
sums and peaks, and the per-minute rollup rows.

Computed one window at a time these took about thirty numpy calls on 50-element arrays per GPU window, a
fifth of the coalescing consumer's CPU at 5 s windows (``docs/benchmarks.md``). Here the windows a batch or
a group of batches brings are stacked, those of equal length (and, for counting energy, the same kind of
start) as the rows of 2-D arrays, and reduced along the rows. numpy reduces each row of a C-ordered array as
it reduces that row alone, and everything else is element by element or an integer sum, so every figure is
the one the window gives alone, bit for bit: the stored totals do not depend on how windows were grouped
(``tests/dashboard/telemetry/test_window_figures.py`` checks it against one window at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from planner.units import MILLIJOULES_PER_J, MILLIWATTS_PER_W, MS_PER_MINUTE
from wattwise_agent.wire import GpuWindow, Implausible, count_windows_mj, power_limit_w

# How a minute's readings fold into its rollup: (rollup column, reading column, numpy fold). A later batch
# reaching the same minute merges in the same way: sums add up, extremes take LEAST/GREATEST.
MINUTE_FOLDS: tuple[tuple[str, str, np.ufunc], ...] = (
    ("sm_clock_sum_mhz", "sm_clock_mhz", np.add), ("sm_clock_min_mhz", "sm_clock_mhz", np.minimum),
    ("sm_clock_max_mhz", "sm_clock_mhz", np.maximum), ("util_sum_pct", "util_pct", np.add),
    ("util_min_pct", "util_pct", np.minimum), ("util_max_pct", "util_pct", np.maximum),
    ("temp_sum_c", "temp_c", np.add), ("temp_min_c", "temp_c", np.minimum), ("temp_max_c", "temp_c", np.maximum),
)
MINUTE_COLUMNS = ("run_gpu_id", "minute_ms", "samples", "energy_j", "power_sum_w", "power_min_w", "power_max_w",
                  *(column for column, _, _ in MINUTE_FOLDS))

_WHOLE = np.zeros(1, dtype=np.intp)  # reduceat's one start: the whole row


@dataclass(frozen=True)
class WindowStats:
    """What a window's readings add up to."""

    deltas_mj: np.ndarray  # the energy each interval counts (wattwise_agent.wire.count_windows_mj)
    power_w: np.ndarray
    energy_j: float
    power_sum_w: float
    peak_power_w: float
    implausible: tuple[Implausible, ...]  # intervals counted 0 J (in deltas_mj)


def window_stats(gpus: Sequence[GpuWindow]) -> list[WindowStats]:
    """Each window's figures, in order; intervals no device could draw (above its power limit, else
    ``WATTWISE_MAX_GPU_POWER_W``) count 0 J and are reported."""
    out: list[WindowStats | None] = [None] * len(gpus)
    ceiling_w = settings.WATTWISE_MAX_GPU_POWER_W
    for rows in _blocks(gpus, lambda gpu: (gpu.samples, gpu.prev_t_ms is not None and gpu.prev_energy_mj is not None)):
        block = [gpus[i] for i in rows]
        prev = (np.array([(gpu.prev_t_ms, gpu.prev_energy_mj) for gpu in block], dtype=np.int64)
                if block[0].prev_t_ms is not None and block[0].prev_energy_mj is not None else None)
        deltas, implausible = count_windows_mj(
            _rows([gpu.energy_mj for gpu in block]), _rows([gpu.t_ms for gpu in block]), prev,
            np.array([power_limit_w(gpu.power_limit_mw, ceiling_w) for gpu in block]),
        )
        power_w = _rows([gpu.power_mw for gpu in block]) / MILLIWATTS_PER_W
        # An integer sum is exact, and dividing the sum as a float is what float(sum) / 1000 does.
        energy_j = (deltas.sum(axis=1) / MILLIJOULES_PER_J).tolist()
        power_sum_w, peak_w = power_w.sum(axis=1).tolist(), power_w.max(axis=1).tolist()
        for j, i in enumerate(rows):
            out[i] = WindowStats(deltas[j], power_w[j], energy_j[j], power_sum_w[j], peak_w[j], implausible[j])
    return [stats for stats in out if stats is not None]


def minute_rows(windows: Sequence[tuple[GpuWindow, int, WindowStats]]) -> list[list[float | int]]:
    """The rollup rows (``MINUTE_COLUMNS``) of (window, run GPU id, its stats): one per minute each window
    reaches, in window order. Each interval's energy counts in the minute it ends."""
    by_window: list[list[list[float | int]]] = [[] for _ in windows]
    within = [i for i, (gpu, _, _) in enumerate(windows)
              if int(gpu.t_ms[0]) // MS_PER_MINUTE == int(gpu.t_ms[-1]) // MS_PER_MINUTE]  # times increase
    for rows in _blocks([windows[i][0] for i in within], lambda gpu: gpu.samples):
        chosen = [within[j] for j in rows]
        for i, row in zip(chosen, _one_minute_rows([windows[i] for i in chosen]), strict=True):
            by_window[i] = [row]
    for i in sorted(set(range(len(windows))) - set(within)):  # rare at 5 s windows: one across a minute
        by_window[i] = _spanning_rows(*windows[i])
    return [row for rows in by_window for row in rows]


def _rows(arrays: list[np.ndarray]) -> np.ndarray:
    """Equal-length 1-D arrays as the rows of one C-ordered 2-D array (``np.stack``'s result, a third of its cost)."""
    return np.concatenate(arrays).reshape(len(arrays), -1)


def _blocks(gpus: Sequence[GpuWindow], kind: Callable[[GpuWindow], Hashable]) -> list[list[int]]:
    """Positions of the windows of each kind (``kind(gpu)``: what must be equal to stack them), in order."""
    found: dict[Hashable, list[int]] = {}
    for i, gpu in enumerate(gpus):
        found.setdefault(kind(gpu), []).append(i)
    return list(found.values())


def _one_minute_rows(windows: Sequence[tuple[GpuWindow, int, WindowStats]]) -> list[list[float | int]]:
    """Rows of windows of equal length, each within one minute: one row each."""
    gpus = [gpu for gpu, _, _ in windows]
    deltas = _rows([s.deltas_mj for _, _, s in windows])
    power_w = _rows([s.power_w for _, _, s in windows])
    readings = {reading: _rows([getattr(gpu, reading) for gpu in gpus]) for reading in {r for _, r, _ in MINUTE_FOLDS}}
    # reduceat over the whole row, not reduce: sums added in the order a minute spanned by windows adds them
    # (_spanning_rows, and the bulk loader).
    columns = [
        [run_gpu_id for _, run_gpu_id, _ in windows],
        [int(gpu.t_ms[0]) // MS_PER_MINUTE * MS_PER_MINUTE for gpu in gpus],
        [gpu.samples for gpu in gpus],
        (np.add.reduceat(deltas, _WHOLE, axis=1)[:, 0] / MILLIJOULES_PER_J).tolist(),
        np.add.reduceat(power_w, _WHOLE, axis=1)[:, 0].tolist(),
        power_w.min(axis=1).tolist(),
        power_w.max(axis=1).tolist(),
        # Whole numbers: their sums, least and greatest are exact in any order.
        *(fold.reduce(readings[reading], axis=1).astype(np.float64).tolist() for _, reading, fold in MINUTE_FOLDS),
    ]
    return [list(row) for row in zip(*columns, strict=True)]


def _spanning_rows(gpu: GpuWindow, run_gpu_id: int, s: WindowStats) -> list[list[float | int]]:
    """A window's rows, one per minute it reaches."""
    minute = gpu.t_ms // MS_PER_MINUTE * MS_PER_MINUTE
    keys, starts = np.unique(minute, return_index=True)
    counts = np.diff(np.append(starts, minute.size))
    energy_j = np.add.reduceat(s.deltas_mj, starts) / MILLIJOULES_PER_J
    power_sum = np.add.reduceat(s.power_w, starts)
    power_min = np.minimum.reduceat(s.power_w, starts)
    power_max = np.maximum.reduceat(s.power_w, starts)
    folded = [fold.reduceat(getattr(gpu, reading), starts) for _, reading, fold in MINUTE_FOLDS]
    return [
        [run_gpu_id, int(key), int(counts[i]), float(energy_j[i]), float(power_sum[i]),
         float(power_min[i]), float(power_max[i]), *(float(values[i]) for values in folded)]
        for i, key in enumerate(keys)
    ]

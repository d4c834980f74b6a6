"""Chart data read from the database: per-minute rollups for long spans, raw windows for short ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings

from dashboard import columns
from dashboard.downsample import Buckets, bucket_samples, bucket_width_ms, merge_buckets
from dashboard.ingest import MINUTE_MS
from dashboard.models import GpuMinute, RunGpu, SampleWindow

METRICS = ("power_w", "sm_clock_mhz", "util_pct", "temp_c")


@dataclass(frozen=True)
class Span:
    start_ms: int
    end_ms: int

    @property
    def width_ms(self) -> int:
        return max(self.end_ms - self.start_ms, 1)


def span_of(run_gpus: list[RunGpu]) -> Span | None:
    spans = [(rg.first_ms, rg.last_ms) for rg in run_gpus if rg.first_ms is not None and rg.last_ms is not None]
    if not spans:
        return None
    return Span(min(s[0] for s in spans), max(s[1] for s in spans))


def _from_minutes(run_gpu_id: int, metric: str, start_ms: int, width_ms: int) -> Buckets:
    rows = list(
        GpuMinute.objects.filter(run_gpu_id=run_gpu_id)
        .order_by("minute_ms")
        .values_list("minute_ms", "samples", "power_sum_w", "power_min_w", "power_max_w",
                     "sm_clock_sum_mhz", "util_sum_pct", "temp_max_c")
    )
    if not rows:
        return Buckets.empty()
    data = np.asarray(rows, dtype=np.float64)
    t, count = data[:, 0].astype(np.int64), data[:, 1]
    if metric == "power_w":
        total, low, high = data[:, 2], data[:, 3], data[:, 4]
    else:
        # Minute rollups keep only the mean of clocks and utilisation, and the max of temperature.
        column = {"sm_clock_mhz": 5, "util_pct": 6}.get(metric)
        if column is None:
            total, low, high = data[:, 7] * count, data[:, 7], data[:, 7]
        else:
            mean = data[:, column] / np.maximum(count, 1)
            total, low, high = data[:, column], mean, mean
    return merge_buckets(t, count, total, low, high, start_ms, width_ms)


def _raw(run_gpu_id: int) -> columns.WindowArrays | None:
    windows = SampleWindow.objects.filter(run_gpu_id=run_gpu_id).order_by("first_ms").only(
        "first_ms", "t_offset_ms", "energy_mj", "power_mw", "sm_clock_mhz", "util_pct", "temp_c"
    )
    decoded = [columns.decode_window(w) for w in windows]
    if not decoded:
        return None
    return columns.WindowArrays(
        *(np.concatenate([getattr(d, field) for d in decoded]) for field in columns.WindowArrays.__dataclass_fields__)
    )


def _raw_metric(arrays: columns.WindowArrays, metric: str) -> np.ndarray:
    if metric == "power_w":
        return arrays.power_mw / 1000.0
    return np.asarray(getattr(arrays, metric), dtype=np.float64)


def gpu_series(
    run_gpu: RunGpu, span: Span, metrics: tuple[str, ...] = METRICS, *, points: int | None = None
) -> dict[str, Buckets]:
    """Downsampled series of one GPU over a span, one entry per metric, at most ``points`` buckets."""
    width = bucket_width_ms(span.width_ms, points or settings.WATTWISE_CHART_POINTS)
    if width >= MINUTE_MS:
        width = -(-width // MINUTE_MS) * MINUTE_MS
        start = span.start_ms // MINUTE_MS * MINUTE_MS
        return {metric: _from_minutes(run_gpu.pk, metric, start, width) for metric in metrics}
    arrays = _raw(run_gpu.pk)
    if arrays is None:
        return {metric: Buckets.empty() for metric in metrics}
    return {metric: bucket_samples(arrays.t_ms, _raw_metric(arrays, metric), span.start_ms, width) for metric in metrics}


def cumulative_energy(run_gpus: list[RunGpu]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Cumulative energy (J) of each GPU at the end of every minute, starting from 0 at the first minute.

    The last value of each GPU is its total: minute rollups are sums of the same counter differences.
    """
    rows = list(
        GpuMinute.objects.filter(run_gpu__in=run_gpus).order_by("minute_ms").values_list(
            "run_gpu_id", "minute_ms", "energy_j"
        )
    )
    minutes = np.unique(np.asarray([r[1] for r in rows], dtype=np.int64))
    if minutes.size == 0:
        return minutes, {rg.pk: np.zeros(0) for rg in run_gpus}
    position = {int(m): i for i, m in enumerate(minutes)}
    per_gpu = {rg.pk: np.zeros(minutes.size) for rg in run_gpus}
    for run_gpu_id, minute_ms, energy_j in rows:
        per_gpu[run_gpu_id][position[minute_ms]] += energy_j
    last_ms = max((rg.last_ms or 0) for rg in run_gpus)
    t_ms = np.concatenate(([minutes[0]], np.minimum(minutes + MINUTE_MS, max(last_ms, int(minutes[0])))))
    return t_ms, {k: np.concatenate(([0.0], np.cumsum(v))) for k, v in per_gpu.items()}

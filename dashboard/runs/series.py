"""Chart data read from the database, aggregated where it lies: minute rollups for long spans, raw windows for short.

Between the two, a chart of power alone (the run page's) whose buckets are at least a window wide is drawn
from the windows' own columns (when, and how much energy), decoding no sample: each window's mean power is
its energy over its time, the time-weighted mean of what the device drew (see :func:`_window_buckets`).

A run of 64 GPUs × 24 h at 10 Hz holds 55 million samples in 1.1 million windows and 92 thousand minute
rows, so the pages never pull rows into Python to bucket them there. Long spans are bucketed by one SQL
``GROUP BY`` over the minute rollups; short spans gather each GPU's encoded windows in SQL (``array_agg`` on
PostgreSQL) and decode only the columns the chart draws (``dashboard.telemetry.columns.decode_many``).
Every query is bounded by the (run_gpu, minute_ms) and (run_gpu, first_ms) indexes; the windows that start
before a span and reach into it are found per agent stream by ``dashboard.telemetry.windows.reach_back_ms``,
in one statement for all the GPUs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from dashboard.runs.downsample import Buckets, bucket_samples, bucket_width_ms
from dashboard.telemetry import columns, compaction, retention
from dashboard.telemetry.models import GpuMinute, RunGpu, SampleWindow
from dashboard.telemetry.windows import TimeRange, one_snapshot, overlapping, reach_back_ms
from planner.units import MILLIWATTS_PER_W, MS_PER_MINUTE, minute_start_ms

METRICS = ("power_w", "sm_clock_mhz", "util_pct", "temp_c")
# Which stored column each metric is read from, and the scale to its unit.
_RAW_COLUMN = {"power_w": ("power_mw", 1 / MILLIWATTS_PER_W), "sm_clock_mhz": ("sm_clock_mhz", 1.0),
               "util_pct": ("util_pct", 1.0), "temp_c": ("temp_c", 1.0)}


@contextmanager
def bitmap_scans() -> Iterator[None]:
    """Read sample rows page by page (bitmap heap scans), not row by row (plain index scans).

    PostgreSQL prefers plain index scans here because a run's GPUs have neighbouring ids, so the index
    looks well ordered with the table; but ingest writes a run's GPUs interleaved in time order, and an
    index scan then visits a heap page per row. For a 64-GPU day that is about 84,000 buffer visits
    against 1,600 for a bitmap scan of the same index, 2 to 5 times slower. The setting is local to the
    transaction and put back after the reads; other databases are left alone.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_indexscan'), set_config('enable_indexscan', 'off', true)")
        before = cursor.fetchone()[0]
        yield
        # Not reached after an error: the rollback (to the savepoint, or of the transaction) undoes it.
        cursor.execute("SELECT set_config('enable_indexscan', %s, true)", [before])


def span_of(run_gpus: Iterable[RunGpu]) -> TimeRange | None:
    """From the first to the last sample of any of these GPUs; None before any sample."""
    spans = [(rg.first_ms, rg.last_ms) for rg in run_gpus if rg.first_ms is not None and rg.last_ms is not None]
    if not spans:
        return None
    return TimeRange(min(s[0] for s in spans), max(s[1] for s in spans))


@dataclass(frozen=True)
class Resolution:
    """How a span is drawn: bucket width, and whether the buckets come from minute rollups."""

    width_ms: int
    from_minutes: bool
    start_ms: int  # bucket 0 starts here (a whole minute when reading rollups)


# Over long spans, minute rollups are used once they give at least this share of the points asked for: decoding raw
# windows costs about 1 µs per sample, so a day of one GPU at 10 Hz (864,000 samples) would take most of
# a second to draw 2,000 points where 1,440 minute buckets take a few milliseconds.
MINUTE_SHARE = 4


def resolution(span: TimeRange, points: int, *, raw_from_ms: int | None = None) -> Resolution:
    """How to draw ``span`` in at most ``points`` buckets. ``raw_from_ms``: raw windows starting before it have
    expired (``dashboard.telemetry.retention``); a span that starts there is drawn from the minute rollups."""
    length_ms = max(span.to_ms - span.from_ms, 1)
    # +1: the span is inclusive, so a sample at to_ms must still land in bucket points - 1.
    width = bucket_width_ms(length_ms + 1, points)
    expired = raw_from_ms is not None and span.from_ms < raw_from_ms
    # Whole minutes overhang a span's ends; over two hours or more that blurs at most 1/120 of it.
    if expired or width >= MS_PER_MINUTE or (width * MINUTE_SHARE >= MS_PER_MINUTE
                                             and length_ms >= 120 * MS_PER_MINUTE):
        # Buckets start on a whole minute, before the span: size them for that longer stretch.
        start = minute_start_ms(span.from_ms)
        width = max(bucket_width_ms(span.to_ms - start + 1, points), MS_PER_MINUTE)
        return Resolution(-(-width // MS_PER_MINUTE) * MS_PER_MINUTE, True, start)
    return Resolution(width, False, span.from_ms)


@dataclass(frozen=True)
class GpuBuckets:
    """One GPU's buckets: per metric min/mean/max, and the energy (J) counted in each bucket."""

    metrics: dict[str, Buckets]
    energy_t_ms: np.ndarray  # end of each bucket that holds energy
    energy_j: np.ndarray
    width_ms: int  # each bucket's width: what a min–max band spans
    from_windows: bool = False  # power: each window's energy over its time (min/max: of those window means)


def _in_list(ids: Sequence[int]) -> str:
    return ", ".join(str(int(i)) for i in ids)


def _extremes(column: str, low: str, high: str, mean: str) -> tuple[str, str, str]:
    # Minutes stored before their extremes were kept, and whose windows were gone by then, have them null:
    # those draw their mean (temperature: their hottest reading) instead.
    return f"SUM({column})", f"MIN(COALESCE({low}, {mean}))", f"MAX(COALESCE({high}, {mean}))"


# What each metric needs from the minute rollups, in SQL: its sum over the bucket's samples, minimum, maximum.
_MINUTE_AGGREGATES = {
    "power_w": ("SUM(power_sum_w)", "MIN(power_min_w)", "MAX(power_max_w)"),
    "sm_clock_mhz": _extremes("sm_clock_sum_mhz", "sm_clock_min_mhz", "sm_clock_max_mhz", "sm_clock_sum_mhz / samples"),
    "util_pct": _extremes("util_sum_pct", "util_min_pct", "util_max_pct", "util_sum_pct / samples"),
    "temp_c": _extremes("COALESCE(temp_sum_c, temp_max_c * samples)", "temp_min_c", "temp_max_c", "temp_max_c"),
}


def _minute_buckets(
    run_gpu_ids: Sequence[int], span: TimeRange, res: Resolution, metrics: Sequence[str]
) -> dict[int, GpuBuckets]:
    """One GROUP BY over the minute rollups of all the GPUs, aggregating only what ``metrics`` need."""
    table = GpuMinute._meta.db_table
    aggregates = [a for metric in metrics for a in _MINUTE_AGGREGATES[metric]]
    sql = (
        f"SELECT run_gpu_id, (minute_ms - %s) / %s AS bucket, SUM(samples), SUM(energy_j), {', '.join(aggregates)} "
        f"FROM {table} WHERE run_gpu_id IN ({_in_list(run_gpu_ids)}) AND minute_ms >= %s AND minute_ms <= %s "
        f"GROUP BY run_gpu_id, bucket ORDER BY run_gpu_id, bucket"
    )
    with bitmap_scans(), connection.cursor() as cursor:
        cursor.execute(sql, [res.start_ms, res.width_ms, res.start_ms, span.to_ms])
        rows = cursor.fetchall()
    found: dict[int, GpuBuckets] = {}
    if not rows:
        return found
    data = np.asarray([row[1:] for row in rows], dtype=np.float64)
    gpu_of_row = np.asarray([row[0] for row in rows], dtype=np.int64)
    for run_gpu_id in np.unique(gpu_of_row):
        part = data[gpu_of_row == run_gpu_id]
        t_ms = res.start_ms + part[:, 0].astype(np.int64) * res.width_ms
        count = np.maximum(part[:, 1], 1)
        column = 3
        per_metric: dict[str, Buckets] = {}
        for metric in metrics:
            per_metric[metric] = Buckets(t_ms, part[:, column] / count, part[:, column + 1], part[:, column + 2])
            column += len(_MINUTE_AGGREGATES[metric])
        found[int(run_gpu_id)] = GpuBuckets(
            per_metric, np.minimum(t_ms + res.width_ms, span.to_ms), part[:, 2], res.width_ms
        )
    return found


@dataclass(frozen=True)
class _RawGpu:
    t_ms: np.ndarray
    values: dict[str, np.ndarray]  # stored column name -> samples
    window_last_ms: np.ndarray
    window_energy_j: np.ndarray


def _raw_postgres(run_gpu_ids: Sequence[int], span: TimeRange, packed: Sequence[str]) -> dict[int, _RawGpu]:
    table = SampleWindow._meta.db_table
    order = "ORDER BY first_ms, stream, seq"
    sql = (
        f"SELECT run_gpu_id, array_agg(first_ms {order}), array_agg(samples {order}), "
        f"array_agg(last_ms {order}), array_agg(energy_j {order}), array_agg(readings {order}), "
        f"array_agg(parts {order}) "
        f"FROM {table} WHERE run_gpu_id = ANY(%s) AND first_ms >= %s AND first_ms <= %s AND last_ms >= %s "
        "GROUP BY run_gpu_id"
    )
    lower_ms = reach_back_ms(run_gpu_ids, span.from_ms)
    found: dict[int, _RawGpu] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [[int(i) for i in run_gpu_ids], lower_ms, span.to_ms, span.from_ms])
        for row in cursor.fetchall():
            first = np.asarray(row[1], dtype=np.int64)
            counts = np.asarray(row[2], dtype=np.int64)
            values = columns.decode_many(row[5], ("t_offset_ms", *packed))
            last_ms, energy_j = compaction.window_ends(row[3], row[4], row[6])
            found[int(row[0])] = _RawGpu(
                t_ms=np.repeat(first, counts) + values.pop("t_offset_ms").astype(np.int64),
                values=values, window_last_ms=last_ms, window_energy_j=energy_j,
            )
    return found


def _raw_portable(run_gpu_ids: Sequence[int], span: TimeRange, packed: Sequence[str]) -> dict[int, _RawGpu]:
    """The same as _raw_postgres, decoding window by window (SQLite: the embedded `make run` default)."""
    found: dict[int, _RawGpu] = {}
    windows = (
        overlapping(run_gpu_ids, span)
        .order_by("run_gpu_id", "first_ms", "stream", "seq")
        .only("run_gpu_id", "first_ms", "last_ms", "energy_j", "samples", "readings", "parts")
    )
    grouped: dict[int, list[SampleWindow]] = {}
    for window in windows:
        grouped.setdefault(window.run_gpu_id, []).append(window)
    for run_gpu_id, group in grouped.items():
        values = columns.decode_many([w.readings for w in group], ("t_offset_ms", *packed))
        first = np.asarray([w.first_ms for w in group], dtype=np.int64)
        counts = np.asarray([w.samples for w in group], dtype=np.int64)
        last_ms, energy_j = compaction.window_ends([w.last_ms for w in group], [w.energy_j for w in group],
                                                   [w.parts for w in group])
        found[run_gpu_id] = _RawGpu(
            t_ms=np.repeat(first, counts) + values.pop("t_offset_ms").astype(np.int64),
            values=values, window_last_ms=last_ms, window_energy_j=energy_j,
        )
    return found


def _raw_buckets(
    run_gpu_ids: Sequence[int], span: TimeRange, res: Resolution, metrics: Sequence[str]
) -> dict[int, GpuBuckets]:
    packed = list(dict.fromkeys(_RAW_COLUMN[m][0] for m in metrics))
    read = _raw_postgres if connection.vendor == "postgresql" else _raw_portable
    found: dict[int, GpuBuckets] = {}
    for run_gpu_id, raw in read(run_gpu_ids, span, packed).items():
        order = np.argsort(raw.t_ms, kind="stable") if np.any(np.diff(raw.t_ms) < 0) else None
        t_ms = raw.t_ms if order is None else raw.t_ms[order]
        keep = span.mask(t_ms)
        per_metric = {}
        for metric in metrics:
            name, scale = _RAW_COLUMN[metric]
            values = raw.values[name] if order is None else raw.values[name][order]
            per_metric[metric] = bucket_samples(t_ms[keep], values[keep].astype(np.float64) * scale, res.start_ms,
                                                res.width_ms)
        # A window's energy is counted at its last sample: the counter difference it closes.
        inside = (raw.window_last_ms > span.from_ms) & (raw.window_last_ms <= span.to_ms)
        index = (raw.window_last_ms[inside] - res.start_ms) // res.width_ms
        energy = np.bincount(index, weights=raw.window_energy_j[inside]) if index.size else np.zeros(0)
        nonzero = np.flatnonzero(energy) if energy.size else np.zeros(0, dtype=np.int64)
        found[run_gpu_id] = GpuBuckets(
            per_metric,
            np.minimum(res.start_ms + (nonzero + 1) * res.width_ms, span.to_ms),
            energy[nonzero] if energy.size else np.zeros(0),
            res.width_ms,
        )
    return found


# Power buckets at least this wide (the agent's default window) are tried from the windows' columns; windows longer
# than the buckets (an agent sending minute windows) still fall back to the samples.
WINDOW_BUCKET_MIN_MS = 5_000


def _window_buckets(run_gpu_ids: Sequence[int], span: TimeRange, res: Resolution) -> dict[int, GpuBuckets] | None:
    """Power buckets from the windows' columns alone, bucketed by two ``GROUP BY`` where they lie (no
    sample is decoded, one statement); None when the buckets are narrower than the windows (a window would then fill
    several buckets: the samples must be read) or when a GPU was read by several streams (counted once: its
    windows' energy covers only part of their time).

    A window's power is its energy over its time, from the stream's previous reading (``prev_t_ms``, where
    its counted energy starts) to its last one; a bucket's mean is its windows' energy over their time, its
    low and high the least and most of their means. A window belongs to the bucket of its midpoint; its
    energy, as in the sample path, to the bucket of its last reading.
    """
    table = SampleWindow._meta.db_table
    begins = "CASE WHEN prev_t_ms IS NOT NULL AND prev_t_ms < first_ms THEN prev_t_ms ELSE first_ms END"
    rows = (f"FROM {table} WHERE run_gpu_id IN ({_in_list(run_gpu_ids)}) AND first_ms >= %(lower)s "
            "AND first_ms <= %(to)s AND last_ms >= %(from)s AND parts IS")
    no_parts = "NULL::bytea" if connection.vendor == "postgresql" else "NULL"  # the column's type, for the UNION
    sql = (  # 0: power by the windows' midpoints, 1: energy by their last readings; one statement
        "SELECT 0, run_gpu_id, (middle_ms - %(start)s) / %(width)s AS bucket, SUM(energy_j), SUM(length_ms), "
        f"MIN(energy_j * 1000.0 / length_ms), MAX(energy_j * 1000.0 / length_ms), COUNT(*), {no_parts} "
        f"FROM (SELECT run_gpu_id, energy_j, last_ms - {begins} AS length_ms, ({begins} + last_ms) / 2 AS middle_ms "
        f"{rows} NULL) w WHERE length_ms > 0 AND middle_ms >= %(from)s AND middle_ms <= %(to)s "
        "GROUP BY run_gpu_id, bucket "
        f"UNION ALL SELECT 1, run_gpu_id, (last_ms - %(start)s) / %(width)s AS bucket, SUM(energy_j), 0, 0, 0, 0, {no_parts} "
        f"{rows} NULL AND last_ms > %(from)s AND last_ms <= %(to)s GROUP BY run_gpu_id, bucket "
        # 2: GPUs read by several streams, whose windows count only time no other covered (their energy over
        # their whole length would understate the power): those are drawn from the samples.
        f"UNION ALL SELECT 2, id, 0, 0, 0, 0, 0, 0, {no_parts} FROM {RunGpu._meta.db_table} "
        f"WHERE id IN ({_in_list(run_gpu_ids)}) AND shared "
        # 3: compacted rows as they are (GPU, previous reading, parts), expanded into their windows below.
        f"UNION ALL SELECT 3, run_gpu_id, prev_t_ms, 0, 0, 0, 0, 0, parts {rows} NOT NULL ORDER BY 1, 2, 3"
    )
    params = {"lower": reach_back_ms(run_gpu_ids, span.from_ms), "from": span.from_ms, "to": span.to_ms,
              "start": res.start_ms, "width": res.width_ms}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found_rows = cursor.fetchall()
    if any(row[0] == 2 for row in found_rows):
        return None
    found_rows = _with_compacted([row[:8] for row in found_rows if row[0] < 2],
                                 [(row[1], row[2], row[8]) for row in found_rows if row[0] == 3], span, res)
    power_rows = [row[1:] for row in found_rows if row[0] == 0]
    energy_rows = [row[1:] for row in found_rows if row[0] == 1]
    # The windows' mean length against the buckets' width: buckets narrower than a window are drawn from the
    # samples.
    windows = sum(int(row[6]) for row in power_rows)
    if windows and sum(float(row[3]) for row in power_rows) / windows > res.width_ms:
        return None
    power = _grouped(power_rows, 6)
    energy = _grouped(energy_rows, 3)
    found: dict[int, GpuBuckets] = {}
    for run_gpu_id in sorted(set(power) | set(energy)):
        p, e = power.get(run_gpu_id), energy.get(run_gpu_id)
        buckets = Buckets.empty() if p is None else Buckets(
            res.start_ms + p[:, 0].astype(np.int64) * res.width_ms, p[:, 1] * 1000.0 / p[:, 2], p[:, 3], p[:, 4])
        if e is None:
            e = np.zeros((0, 2))
        e = e[e[:, 1] != 0]
        found[run_gpu_id] = GpuBuckets(
            {"power_w": buckets},
            np.minimum(res.start_ms + (e[:, 0].astype(np.int64) + 1) * res.width_ms, span.to_ms), e[:, 1],
            res.width_ms, from_windows=True,
        )
    return found


def _with_compacted(rows: list[tuple[Any, ...]], compacted: list[tuple[Any, ...]], span: TimeRange,
                    res: Resolution) -> list[tuple[Any, ...]]:
    """``_window_buckets``' grouped rows, with the windows that compacted rows hold (``compacted``: their GPU,
    previous reading and ``parts``) counted in as the statement counts a window."""
    if not compacted:
        return rows
    gpu_ids, energy, begins, ends, starts = [], [], [], [], []
    for run_gpu_id, prev_t_ms, parts in compacted:
        held = compaction.decode_parts(parts)
        first, last = held["first_ms"].astype(np.int64), held["last_ms"].astype(np.int64)
        # Each window after the row's first starts from the one before it (its previous reading).
        previous = np.concatenate(([first[0] if prev_t_ms is None else prev_t_ms], last[:-1]))
        gpu_ids.append(np.full(first.size, run_gpu_id, dtype=np.int64))
        energy.append(held["energy_j"].astype(np.float64))
        begins.append(np.where(previous < first, previous, first))
        ends.append(last)
        starts.append(first)
    gpu, e, lo, hi = (np.concatenate(a) for a in (gpu_ids, energy, begins, ends))
    length = hi - lo
    middle = (lo + hi) // 2
    # What the statement's WHERE asks of a window (it starts by the span's end and ends in it or after), then
    # each branch's own condition.
    first = np.concatenate([np.asarray(a) for a in starts])
    in_reach = (first <= span.to_ms) & (hi >= span.from_ms)
    timed = in_reach & (length > 0) & (middle >= span.from_ms) & (middle <= span.to_ms)
    ended = in_reach & (hi > span.from_ms) & (hi <= span.to_ms)
    power = np.divide(e * 1000.0, length, out=np.zeros_like(e), where=length > 0)
    groups: dict[tuple[int, int, int], list[float]] = {(r[0], r[1], r[2]): [float(v) for v in r[3:]] for r in rows}
    # 0: power, by the windows' midpoints (energy and time summed, least and most power, count); 1: energy, by
    # the windows' last readings.
    for kind, keep, at_ms in ((0, timed, middle), (1, ended, hi)):
        for key, figures in _reduced(gpu[keep], (at_ms[keep] - res.start_ms) // res.width_ms, e[keep], length[keep],
                                     power[keep]):
            group = groups.get((kind, *key))
            if kind == 1:
                figures[1:] = [0.0, 0.0, 0.0, 0.0]
            if group is None:
                groups[(kind, *key)] = figures
            else:
                groups[(kind, *key)] = [group[0] + figures[0], group[1] + figures[1], min(group[2], figures[2]),
                                        max(group[3], figures[3]), group[4] + figures[4]]
    return [(*key, *values) for key, values in sorted(groups.items())]


def _reduced(gpu: np.ndarray, bucket: np.ndarray, energy_j: np.ndarray, length_ms: np.ndarray,
             power_w: np.ndarray) -> list[tuple[tuple[int, int], list[float]]]:
    """Per distinct (GPU, bucket): energy and time summed, least and most power, count."""
    if not gpu.size:
        return []
    order = np.lexsort((bucket, gpu))
    gpu, bucket = gpu[order], bucket[order]
    starts = np.flatnonzero(np.concatenate(([True], (np.diff(gpu) != 0) | (np.diff(bucket) != 0))))
    counts = np.diff(np.append(starts, gpu.size))
    reduced = (np.add.reduceat(energy_j[order], starts), np.add.reduceat(length_ms[order].astype(np.float64), starts),
                np.minimum.reduceat(power_w[order], starts), np.maximum.reduceat(power_w[order], starts), counts)
    return [((int(g), int(b)), [float(c[i]) for c in reduced])
            for i, (g, b) in enumerate(zip(gpu[starts].tolist(), bucket[starts].tolist(), strict=True))]


def _grouped(rows: list[tuple[Any, ...]], width: int) -> dict[int, np.ndarray]:
    """Rows of (run_gpu_id, bucket, values…), ordered by GPU, as one float array of (bucket, values…) per GPU."""
    if not rows:
        return {}
    data = np.asarray([row[1:width] for row in rows], dtype=np.float64)
    gpus = np.asarray([row[0] for row in rows], dtype=np.int64)
    return {int(g): data[gpus == g] for g in np.unique(gpus)}


def gpu_buckets(
    run_gpu_ids: Sequence[int], span: TimeRange, metrics: Sequence[str] = METRICS, *, points: int | None = None
) -> dict[int, GpuBuckets]:
    """Bucketed series of several GPUs over one span, at most ``points`` buckets each.

    GPUs with no data in the span are absent from the result.
    """
    if not run_gpu_ids or span.empty:
        return {}
    res = resolution(span, points or settings.WATTWISE_CHART_POINTS, raw_from_ms=retention.raw_from_ms())
    if res.from_minutes:
        return _minute_buckets(run_gpu_ids, span, res, metrics)
    with one_snapshot():
        if tuple(metrics) == ("power_w",) and res.width_ms >= WINDOW_BUCKET_MIN_MS:
            found = _window_buckets(run_gpu_ids, span, res)
            if found is not None:
                return found
        return _raw_buckets(run_gpu_ids, span, res, metrics)


def cumulative(
    start_ms: int, t_ms_by_key: dict[str, list[np.ndarray]], energy_by_key: dict[str, list[np.ndarray]]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Stack per-bucket energy of groups (e.g. the GPUs of each node) into cumulative curves on one time axis.

    Each curve starts at 0 at ``start_ms`` and ends at its group's total over the buckets given.
    """
    all_t = [t for ts in t_ms_by_key.values() for t in ts if t.size]
    if not all_t:
        return np.zeros(0, dtype=np.int64), {key: np.zeros(0) for key in t_ms_by_key}
    axis = np.unique(np.concatenate(all_t))
    curves: dict[str, np.ndarray] = {}
    for key, times in t_ms_by_key.items():
        per_bucket = np.zeros(axis.size)
        for t, energy in zip(times, energy_by_key[key], strict=True):
            np.add.at(per_bucket, np.searchsorted(axis, t), energy)
        curves[key] = np.concatenate(([0.0], np.cumsum(per_bucket)))
    return np.concatenate(([min(start_ms, int(axis[0]))], axis)), curves

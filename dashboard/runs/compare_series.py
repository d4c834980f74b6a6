"""The compare page's series: each run's total power and cumulative energy against time since its start.

Runs are compared at fleet scale (64 GPUs × 24 h at 10 Hz is 55 million samples a run), so nothing here
decodes a sample or loops over rows in Python. The database sums energy across all of a run's GPUs in
one query per run and returns a few thousand rows at most; numpy turns them into at most about
:data:`POINTS` buckets:

* long spans read the per-minute rollups (``GpuMinute``, by index on its GPU), in buckets of whole
  minutes;
* short spans, where minutes would be too coarse, read each window's stored ``energy_j`` with its
  ``first_ms`` and ``last_ms`` (``SampleWindow``, by index on its GPU), never its encoded samples, as
  long as that is at most :data:`WINDOW_ROWS` rows. A window across bucket boundaries is split
  between the buckets in proportion to time.

A bucket's power is its energy over the time the run covered in it: counter-based, so the area under the
power curve is the energy. Cumulative energy is the running sum of the same buckets and ends at the
run's total (the rollups and windows are sums of the same counter differences as the totals).

Step markers (``step_end`` events with a ``step`` number) are read at up to :data:`STEP_POINTS` bucket
boundaries: for each, the latest marker at or before it, found by one probe of the ``(run, kind, t_ms)``
index, however many steps (and ranks reporting them) the run has.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import BigIntegerField, ExpressionWrapper, F, Sum

from dashboard.runs.series import bitmap_scans
from dashboard.telemetry import compaction
from dashboard.telemetry.models import GpuMinute, RunEvent, RunGpu, SampleWindow
from dashboard.telemetry.windows import TimeRange
from planner.units import MS_PER_HOUR, MS_PER_MINUTE, MS_PER_S, minute_start_ms

POINTS = 1_500
"""Most buckets per trace."""
SHORT_SPAN_MS = 2 * MS_PER_HOUR
"""Below this span the windows give a finer picture than minute rollups (5 s against 60 s buckets)."""
MIN_WINDOW_BUCKET_MS = 5_000
"""Agent windows are 5 s long: narrower buckets would only repeat each window's mean."""
WINDOW_ROWS = 150_000
"""Most window rows one compare reads (3 runs × 64 GPUs × 40 min); beyond it, the minute rollups
(a fleet's windows are a full row each, with the encoded samples: reading them costs ~1.5 µs a row)."""
STEP_POINTS = 500
"""Most step markers read per run: the step axis needs far fewer points than the time axis."""
STEP_END = "step_end"
_AFTER_EVERYTHING_MS = 2**62


@dataclass(frozen=True)
class Plan:
    """Where a compare reads its series from, and the bucket width every run shares."""

    source: str  # "windows" or "minutes"
    bucket_ms: int


def plan_for(spans_ms: Sequence[int], gpu_ms: float = 0.0, points: int = POINTS, *, raw_expired: bool = False) -> Plan:
    """One bucket width for all compared runs (so their traces have the same resolution), from the longest.

    ``gpu_ms`` is the compared runs' GPU time (each GPU's first-to-last span, summed): with one window
    per GPU per 5 s, it says how many window rows the finer reading would take. ``raw_expired``: some run's
    raw windows were dropped by the raw retention, so only the minute rollups hold all of them.
    """
    longest = max(spans_ms, default=0)
    width = -(-max(longest, 1) // points)
    if longest < SHORT_SPAN_MS and gpu_ms / MIN_WINDOW_BUCKET_MS <= WINDOW_ROWS and not raw_expired:
        return Plan("windows", max(width, MIN_WINDOW_BUCKET_MS))
    return Plan("minutes", -(-width // MS_PER_MINUTE) * MS_PER_MINUTE)


@dataclass(frozen=True)
class StepSeries:
    """A run's progress in steps: at each sampled step marker, the steps done and the energy spent so far."""

    first_step: int
    count: int  # steps from the first marker to the last, inclusive
    steps: np.ndarray  # steps completed, starting with 0 at the run's first sample
    cumulative_j: np.ndarray  # energy spent by then, starting with 0
    power_steps: np.ndarray  # steps completed at each power point (no leading 0)
    power_w: np.ndarray  # mean power of the bucket each of those steps ended in


@dataclass(frozen=True)
class RunSeries:
    run_id: int
    first_ms: int  # the run's first reading: elapsed time 0
    start_ms: int  # where the first bucket starts (a minute boundary for rollups)
    bucket_ms: int
    elapsed_s: np.ndarray  # 0, then each bucket's end (the last one clipped to the run's last reading)
    cumulative_j: np.ndarray  # energy spent by each of those times
    power_elapsed_s: np.ndarray  # middle of the part of each bucket the run covered
    power_w: np.ndarray  # that part's mean total power; NaN where no GPU sent anything
    steps: StepSeries | None = None

    @property
    def buckets(self) -> int:
        return int(self.power_w.size)


def _empty(run_id: int) -> RunSeries:
    nothing = np.zeros(0)
    return RunSeries(run_id, 0, 0, 0, nothing, nothing, nothing, nothing)


def run_gpu_ids(run_ids: Sequence[int]) -> dict[int, list[int]]:
    """Each run's ``RunGpu`` ids, in one query: the series filter on them so every read is an index range."""
    ids: dict[int, list[int]] = {run_id: [] for run_id in run_ids}
    for run_id, run_gpu_id in RunGpu.objects.filter(run_id__in=run_ids).values_list("run_id", "id").order_by():
        ids[run_id].append(run_gpu_id)
    return ids


def _minutes(run_gpus: Sequence[int], start_ms: int, width_ms: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Energy per bucket and whether any GPU had a minute in it, from the per-minute rollups."""
    bucket = ExpressionWrapper((F("minute_ms") - start_ms) / width_ms, output_field=BigIntegerField())
    rows = list(
        GpuMinute.objects.filter(run_gpu_id__in=run_gpus).annotate(bucket=bucket).values_list("bucket")
        .annotate(energy_j=Sum("energy_j")).order_by()
    )
    energy, present = np.zeros(n), np.zeros(n, dtype=bool)
    if rows:
        index = np.clip(np.asarray([r[0] for r in rows], dtype=np.int64), 0, n - 1)
        np.add.at(energy, index, np.asarray([r[1] for r in rows], dtype=np.float64))
        present[index] = True
    return energy, present


def _windows(run_gpus: Sequence[int], start_ms: int, width_ms: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Energy per bucket from the windows' stored energies; a window across boundaries is split by time.

    The database only sums windows that cover the same interval (a batch's windows share it across a
    node's GPUs), so what comes back is about one row per window time, not one per GPU window.
    """
    # A window's energy runs from the stream's previous reading (one sample period before its first)
    # to its last reading; the first window of a stream counts nothing before its first reading.
    # Compacted rows come back as they are (``parts`` not null), to be expanded into their windows.
    among = f"w.run_gpu_id IN ({', '.join(['%s'] * len(run_gpus))})"
    sql = (
        "SELECT lo, hi, SUM(e), NULL, NULL FROM (SELECT w.energy_j AS e, w.last_ms AS hi, w.first_ms - CASE WHEN "
        "w.prev_energy_mj IS NOT NULL AND w.samples > 1 THEN (w.last_ms - w.first_ms) / (w.samples - 1) "
        f"ELSE 0 END AS lo FROM {SampleWindow._meta.db_table} w WHERE {among} AND w.parts IS NULL) spans "
        f"GROUP BY lo, hi UNION ALL SELECT 0, 0, 0, w.prev_energy_mj, w.parts FROM {SampleWindow._meta.db_table} w "
        f"WHERE {among} AND w.parts IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*run_gpus, *run_gpus])
        found = cursor.fetchall()
    rows = [row[:3] for row in found if row[4] is None] + _compacted_spans([row[3:] for row in found if row[4] is not None])
    energy, present = np.zeros(n), np.zeros(n, dtype=bool)
    if not rows:
        return energy, present
    data = np.asarray(rows, dtype=np.float64)
    lo, hi, joules = data[:, 0], data[:, 1], data[:, 2]
    first = np.clip((lo.astype(np.int64) - start_ms) // width_ms, 0, n - 1)
    last = np.clip((hi.astype(np.int64) - start_ms) // width_ms, 0, n - 1)
    within = first == last
    np.add.at(energy, first[within], joules[within])
    # Across boundaries, each bucket gets the window's mean power times the part of it the bucket holds:
    # the first and last buckets their ends, and any bucket in between (a window longer than a bucket)
    # its whole width, spread with a difference array.
    split = ~within
    rate = joules[split] / (hi[split] - lo[split])
    a, b = first[split], last[split]
    np.add.at(energy, a, rate * ((a + 1) * width_ms + start_ms - lo[split]))
    np.add.at(energy, b, rate * (hi[split] - (b * width_ms + start_ms)))
    middle = np.zeros(n + 1)
    np.add.at(middle, a + 1, rate * width_ms)
    np.add.at(middle, b, -rate * width_ms)
    energy += np.cumsum(middle[:n])
    covered = np.zeros(n + 1, dtype=np.int64)
    np.add.at(covered, first, 1)
    np.add.at(covered, last + 1, -1)
    return energy, np.cumsum(covered[:n]) > 0


def _compacted_spans(compacted: list[tuple[Any, ...]]) -> list[tuple[int, int, float]]:
    """(lo, hi, energy) of each window that compacted rows (their ``prev_energy_mj``, ``parts``) hold, as
    ``_windows``' statement gives a window's."""
    spans: list[tuple[int, int, float]] = []
    for prev_energy_mj, parts in compacted:
        held = compaction.decode_parts(parts)
        first, last, samples = (held[name].astype(np.int64) for name in ("first_ms", "last_ms", "samples"))
        # Every window after the row's first continues the one before it: it has a previous reading.
        reaches_back = (np.arange(held.size) > 0) | (prev_energy_mj is not None)
        step = np.where(reaches_back & (samples > 1), (last - first) // np.maximum(samples - 1, 1), 0)
        spans += zip((first - step).tolist(), last.tolist(), held["energy_j"].tolist(), strict=True)
    return spans


def _step_number(data: Any) -> int | None:
    if isinstance(data, str):  # SQLite hands JSON back as text
        data = json.loads(data)
    step = data.get("step") if isinstance(data, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def _marker_times(run_id: int, boundaries_ms: Sequence[int]) -> list[int]:
    """For each boundary, the time of the latest step marker at or before it: one index probe each.

    A scalar subquery in the select list runs once per boundary whatever the planner thinks of the
    table sizes (a join could be turned into a hash of every marker of the run).
    """
    event = RunEvent._meta.db_table
    values = ", ".join(f"({int(t)})" for t in boundaries_ms)
    sql = (
        f"WITH b(t) AS (VALUES {values}) SELECT (SELECT e.t_ms FROM {event} e WHERE e.run_id = %s "
        "AND e.kind = %s AND e.t_ms <= b.t ORDER BY e.t_ms DESC LIMIT 1) FROM b"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_id, STEP_END])
        return sorted({int(t_ms) for (t_ms,) in cursor.fetchall() if t_ms is not None})


def _steps(series: RunSeries) -> StepSeries | None:
    """Steps done against energy spent, at up to :data:`STEP_POINTS` markers (and always the last one)."""
    run_id = series.run_id
    first = RunEvent.objects.filter(run_id=run_id, kind=STEP_END).order_by("t_ms").values_list("t_ms", "data").first()
    first_step = _step_number(first[1]) if first else None
    if first_step is None:
        return None
    n, start, width = series.buckets, series.start_ms, series.bucket_ms
    every = -(-n // STEP_POINTS)
    boundaries = [start + (i + 1) * width for i in range(every - 1, n, every)] + [_AFTER_EVERYTHING_MS]
    times = _marker_times(run_id, boundaries)
    seen: dict[int, int] = {}
    # Several ranks may mark a step at the same millisecond: the highest step there counts.
    for t_ms, data in RunEvent.objects.filter(run_id=run_id, kind=STEP_END, t_ms__in=times).values_list("t_ms", "data"):
        step = _step_number(data)
        if step is not None:
            done_there = step - first_step + 1
            seen[int(t_ms)] = max(seen.get(int(t_ms), done_there), done_there)
    marked = np.asarray(sorted(seen), dtype=np.int64)
    done = np.maximum.accumulate(np.asarray([seen[int(t)] for t in marked], dtype=np.int64))
    keep = done >= 1
    marked, done = marked[keep], done[keep]
    if done.size == 0:
        return None
    energy = np.interp((marked - series.first_ms) / MS_PER_S, series.elapsed_s, series.cumulative_j)
    power = series.power_w[np.clip((marked - start) // width, 0, n - 1)]
    return StepSeries(
        first_step=first_step,
        count=int(done[-1]),
        steps=np.concatenate(([0], done)),
        cumulative_j=np.concatenate(([0.0], energy)),
        power_steps=done,
        power_w=power,
    )


@dataclass(frozen=True)
class RunReadings:
    """A run and the time from its first reading to its last (any GPU); ``None`` while it has none."""

    run_id: int
    readings: TimeRange | None


def _buckets(run: RunReadings, run_gpus: Sequence[int], plan: Plan) -> RunSeries:
    if run.readings is None or not run_gpus:
        return _empty(run.run_id)
    first_ms, last_ms = run.readings.from_ms, run.readings.to_ms
    width = plan.bucket_ms
    # Rollups are aligned to wall-clock minutes, so minute buckets start on one.
    start = minute_start_ms(first_ms) if plan.source == "minutes" else first_ms
    n = (last_ms - start) // width + 1
    read = _minutes if plan.source == "minutes" else _windows
    energy, present = read(run_gpus, start, width, n)
    lows = np.maximum(start + np.arange(n, dtype=np.int64) * width, first_ms)
    ends = np.minimum(start + np.arange(1, n + 1, dtype=np.int64) * width, last_ms)
    covered_s = np.maximum(ends - lows, 0) / MS_PER_S
    with np.errstate(divide="ignore", invalid="ignore"):
        power = np.where(present & (covered_s > 0), energy / covered_s, np.nan)
    return RunSeries(
        run_id=run.run_id,
        first_ms=first_ms,
        start_ms=start,
        bucket_ms=width,
        elapsed_s=np.concatenate(([0.0], (ends - first_ms) / MS_PER_S)),
        cumulative_j=np.concatenate(([0.0], np.cumsum(energy))),
        power_elapsed_s=((lows + ends) / 2 - first_ms) / MS_PER_S,
        power_w=power,
    )


def read_series(runs: Sequence[RunReadings], plan: Plan) -> list[RunSeries]:
    """Each run's aligned series (time since its first sample) and, where it has markers, its steps.

    Queries: one for the runs' GPUs, one per run for its buckets (two more on PostgreSQL, for
    :func:`_bitmap_scans`), and up to three per run for its steps; none depends on the number of GPUs.
    """
    run_gpus = run_gpu_ids([r.run_id for r in runs])
    with bitmap_scans():
        series = [_buckets(run, run_gpus[run.run_id], plan) for run in runs]
    out = []
    for s in series:
        steps = _steps(s) if s.buckets else None
        out.append(s if steps is None else replace(s, steps=steps))
    return out

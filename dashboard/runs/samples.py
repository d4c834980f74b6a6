"""A GPU's stored readings over a time range, as pages of raw samples or as min/mean/max buckets.

Plain functions over ``SampleWindow`` and ``GpuMinute``: no HTTP here. Only windows that overlap the
range are read (``dashboard.telemetry.windows.overlapping``: one range scan of the ``(run_gpu, first_ms)``
index, from the earliest window of any agent stream that reaches into the range).

Raw pages are ordered by ``(t_ms, window id, position in window)``, which is total even when two
streams recorded the same GPU at the same millisecond, and a page's cursor is the last key it
returned, so walking the pages visits every sample exactly once however windows were batched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dashboard.runs import series
from dashboard.runs.downsample import Buckets
from dashboard.telemetry import columns, retention
from dashboard.telemetry.models import RunGpu, SampleWindow
from dashboard.telemetry.windows import TimeRange, one_snapshot, overlapping

MAX_PAGE_SAMPLES = 10_000
DEFAULT_PAGE_SAMPLES = 1_000
MAX_POINTS = 5_000
METRICS = series.METRICS
# Sample columns as stored (integers, exactly as the agent sent them).
SAMPLE_FIELDS = ("t_ms", "energy_mj", "power_mw", "sm_clock_mhz", "util_pct", "temp_c")
_CURSOR = re.compile(r"^(\d{1,16})\.(\d{1,18})\.(\d{1,9})$")  # each part well inside int64


class BadRequest(ValueError):
    """Input that is well-formed but cannot be answered (an inverted range, a corrupt cursor)."""


class RawExpired(Exception):
    """Raw samples asked for that the raw retention dropped (answered 410 Gone, saying what is kept)."""


def refuse_expired(run_gpus: list[RunGpu], span: TimeRange, instead: str) -> None:
    """Raise ``RawExpired`` when ``span`` reaches into the stretch whose raw samples expired."""
    found = retention.expired(run_gpus)
    if found is not None and span.from_ms <= found.to_ms and span.to_ms >= found.from_ms:
        raise RawExpired(f"{found.message} Ask for samples from {found.to_ms + 1} ms (epoch) on, or {instead}.")


@dataclass(frozen=True)
class Cursor:
    """Position after the last sample of a page: its time, window and index inside the window."""

    t_ms: int
    window_id: int
    index: int

    def encode(self) -> str:
        return f"{self.t_ms}.{self.window_id}.{self.index}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        match = _CURSOR.match(text)
        if match is None:
            raise BadRequest("cursor: not a cursor this API returned (expected the next_cursor of a page)")
        return cls(*(int(part) for part in match.groups()))


def time_range(run_gpu: RunGpu, from_ms: int | None, to_ms: int | None) -> TimeRange | None:
    """The requested range, defaulting to the GPU's own span; None when the GPU has no readings yet.

    Raises ``BadRequest`` when the range is inverted.
    """
    if from_ms is not None and to_ms is not None and from_ms > to_ms:
        raise BadRequest(f"from_ms ({from_ms}) is after to_ms ({to_ms})")
    if run_gpu.first_ms is None or run_gpu.last_ms is None:
        return None
    start = run_gpu.first_ms if from_ms is None else from_ms
    end = run_gpu.last_ms if to_ms is None else to_ms
    return TimeRange(start, end)


# --- reading windows ---------------------------------------------------------------------------------

_ROW = ("id", "first_ms", "last_ms", "samples", "readings")  # a window as read: metadata, then its encoded columns
_FIRST_MS = 1
WindowRow = tuple[Any, ...]


def _window_chunks(run_gpu: RunGpu, span: TimeRange, want: int) -> Iterator[list[WindowRow]]:
    """Every window overlapping ``span``, in ``(first_ms, id)`` order (keyset-paginated on the index), a chunk
    of about ``want`` samples at a time: those that start before the span and reach into it come first."""
    windows = overlapping([run_gpu.pk], span)
    after: tuple[int, int] | None = None
    # ~50 samples a window at 10 Hz: a chunk covers a page of one stream in about one query. Compacted rows hold
    # thousands (dashboard.telemetry.compaction): a few of them are a page.
    most = max(16, want // 40)
    chunk = 2 if run_gpu.compacted_ms > span.from_ms else most
    while True:
        if after is None:
            query = windows
        else:  # ">= first_ms" keeps the index condition; the exclusion skips what was read at that time
            query = windows.filter(first_ms__gte=after[0]).exclude(first_ms=after[0], id__lte=after[1])
        rows = list(query.order_by("first_ms", "id").values_list(*_ROW)[:chunk])
        if rows:
            yield rows
        if len(rows) < chunk:
            return
        after = (rows[-1][_FIRST_MS], rows[-1][0])
        per_row = sum(row[3] for row in rows) / len(rows)
        chunk = int(min(most, max(2, want // max(per_row, 1) + 1)))


def _decode(rows: list[WindowRow]) -> dict[str, np.ndarray]:
    """Several windows' samples at once (``columns.decode_many``, one array per column), with each sample's
    window id and index in its window: its sort key."""
    first_ms = np.array([row[_FIRST_MS] for row in rows], dtype=np.int64)
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    out = columns.decode_many([row[4] for row in rows])
    counts = np.array([row[3] for row in rows], dtype=np.int64)
    out["t_ms"] = out.pop("t_offset_ms").astype(np.int64) + np.repeat(first_ms, counts)
    out["window_id"] = np.repeat(ids, counts)
    out["index"] = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return out


def _keep(samples: dict[str, np.ndarray], span: TimeRange, after: Cursor | None, *, replaced: bool) -> np.ndarray:
    """Samples in the span and after the cursor. ``replaced``: the cursor's window is no longer stored as it was
    (compacted since: its samples are in a row with another id): the cursor's time is then done with, as only
    GPUs read by one stream at a time are compacted, whose samples do not share a time (a stream that
    started at the very millisecond another ended, or another stream's batch of that millisecond that arrived
    after compaction, would lose that one sample from the pages)."""
    t_ms = samples["t_ms"]
    keep = span.mask(t_ms)
    if after is not None and replaced:
        keep &= t_ms > after.t_ms
    elif after is not None:
        window_id, index = samples["window_id"], samples["index"]
        later_in_tie = (window_id > after.window_id) | ((window_id == after.window_id) & (index > after.index))
        keep &= (t_ms > after.t_ms) | ((t_ms == after.t_ms) & later_in_tie)
    return keep


@dataclass
class _Collected:
    """Samples kept from several chunks of windows, as lists of column arrays."""

    parts: dict[str, list[np.ndarray]]
    count: int = 0

    @classmethod
    def empty(cls, names: tuple[str, ...]) -> _Collected:
        return cls({name: [] for name in names})

    def add(self, samples: dict[str, np.ndarray], keep: np.ndarray) -> None:
        kept = int(np.count_nonzero(keep))
        if kept:
            for name, parts in self.parts.items():
                parts.append(samples[name][keep])
            self.count += kept

    def joined(self) -> dict[str, np.ndarray]:
        return {
            name: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64) for name, parts in self.parts.items()
        }

    def kth_time(self, k: int) -> int:
        """The k-th smallest timestamp kept so far (k counts from 1)."""
        return int(np.partition(np.concatenate(self.parts["t_ms"]), k - 1)[k - 1])


# --- raw pages -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplePage:
    span: TimeRange | None
    columns: dict[str, np.ndarray]
    next_cursor: Cursor | None

    @property
    def count(self) -> int:
        return int(self.columns["t_ms"].size)


def _still_stored(run_gpu: RunGpu, after: Cursor) -> bool:
    """Whether the cursor's window is still a row of its own (not compacted since the cursor was given)."""
    return SampleWindow.objects.filter(run_gpu_id=run_gpu.pk, id=after.window_id, first_ms__lte=after.t_ms,
                                       first_ms__gte=after.t_ms - run_gpu.max_window_ms).exists()


def read_page(
    run_gpu: RunGpu, from_ms: int | None, to_ms: int | None, *, limit: int, after: Cursor | None = None
) -> SamplePage:
    """Up to ``limit`` samples of ``run_gpu`` in the range, after ``after``, in time order.

    Windows are read in start order only as far as the page reaches: once ``limit`` samples are
    kept, a window starting after the ``limit``-th earliest of them cannot hold any of the page's.
    """
    span = time_range(run_gpu, from_ms, to_ms)
    empty = {name: np.zeros(0, dtype=np.int64) for name in SAMPLE_FIELDS}
    if span is None:
        return SamplePage(None, empty, None)
    refuse_expired([run_gpu], span, "for the per-minute buckets (/samples/buckets)")
    start_ms = span.from_ms if after is None else max(span.from_ms, after.t_ms)
    if start_ms > span.to_ms:
        return SamplePage(span, empty, None)
    collected = _Collected.empty((*SAMPLE_FIELDS, "window_id", "index"))
    cut_ms: int | None = None
    more = False
    with one_snapshot():  # the chunks' statements see one state of the windows, compacted or not
        replaced = after is not None and not _still_stored(run_gpu, after)
        for rows in _window_chunks(run_gpu, TimeRange(start_ms, span.to_ms), limit):
            if cut_ms is not None:
                needed = [row for row in rows if row[_FIRST_MS] <= cut_ms]
                more = len(needed) < len(rows)  # a later window in range: the page ends before it
                rows = needed
            if rows:
                samples = _decode(rows)
                collected.add(samples, _keep(samples, span, after, replaced=replaced))
            if collected.count >= limit:
                cut_ms = collected.kth_time(limit)
            if more:
                break
    joined = collected.joined()
    order = np.lexsort((joined["index"], joined["window_id"], joined["t_ms"]))[:limit]
    page = {name: joined[name][order].astype(np.int64) for name in SAMPLE_FIELDS}
    next_cursor = None
    if more or collected.count > limit:  # then the page is full: the cursor is its last sample
        last = order[-1]
        next_cursor = Cursor(int(joined["t_ms"][last]), int(joined["window_id"][last]), int(joined["index"][last]))
    return SamplePage(span, page, next_cursor)


# --- buckets -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketSeries:
    span: TimeRange | None
    bucket_ms: int
    source: str  # "samples" or "minutes"
    t_ms: np.ndarray
    metrics: dict[str, Buckets]


def read_buckets(run_gpu: RunGpu, from_ms: int | None, to_ms: int | None, *, points: int) -> BucketSeries:
    """At most ``points`` fixed-width buckets (min/mean/max per metric) over the range.

    Buckets a minute wide or wider come from the per-minute rollups, as the charts do; narrower ones
    from the raw samples. Empty buckets are left out.
    """
    span = time_range(run_gpu, from_ms, to_ms)
    if span is None:
        return BucketSeries(None, 0, "samples", np.zeros(0, dtype=np.int64), {m: Buckets.empty() for m in METRICS})
    # The pages' own bucketing (dashboard.runs.series): the API returns what the charts draw.
    resolution = series.resolution(span, points, raw_from_ms=retention.raw_from_ms())
    found = series.gpu_buckets([run_gpu.pk], span, METRICS, points=points).get(run_gpu.pk)
    metrics = found.metrics if found else {m: Buckets.empty() for m in METRICS}
    source = "minutes" if resolution.from_minutes else "samples"
    return BucketSeries(span, resolution.width_ms, source, metrics["power_w"].t_ms, metrics)

"""Compaction of closed windows: a stream's consecutive windows of one GPU become one row per chunk of time.

At 5 s windows a row carries 50 readings per GPU, and its fixed cost (the row's header and columns, its three
index entries, the encoded blob's own header) is about a third of what a sample costs to keep. Once nothing
more is expected of a stretch of time (``WATTWISE_COMPACT_AFTER_S`` after it, an hour by default), the beat
task ``telemetry.compact_windows`` rewrites each GPU's windows of one stream within one chunk
(``WATTWISE_COMPACT_CHUNK_S``, ten minutes by default) as one row: their readings end to end in one encoded blob
(``dashboard.telemetry.columns``; timestamps as offsets from the chunk's first reading), and in ``parts`` each
window's own batch number, first and last reading, sample count and counted energy. ``docs/benchmarks.md``
gives what it saves.

Every figure read from a compacted row is the one its windows gave: the readers that use a window's own span or
energy (``dashboard.runs.series``, ``dashboard.runs.compare_series``) expand a row into its windows from
``parts``; ``dashboard.telemetry.coverage`` works on unions of time, which a row and its windows share; the rest
read the readings, which are the same samples. Readers that take several statements read them in one snapshot
(``windows.one_snapshot``), so a pass that commits between two of them changes nothing they see. Migrating
back past telemetry 0019 turns every row into its windows again (``expand_all``), the same columns and bytes as
before (new ids).

Only windows that continue each other are joined (the next one's previous reading is the last one's last, and
its batch number the next), so a row never hides a gap, and a batch that arrives late into a gap stays a window
of its own beside them. GPUs read by several streams at once (``RunGpu.overlap_ms``, not only one after the other
as an agent that restarted does) are left as they are: their windows count only time no other covered, their
samples interleave, and pages draw them from the samples anyway.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import zstandard
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest

from dashboard.telemetry import batch_store, columns
from dashboard.telemetry.bound_sql import write_rows
from dashboard.telemetry.models import RunGpu, SampleWindow
from dashboard.web.session_lock import try_session_lock
from planner.units import MS_PER_HOUR

log = logging.getLogger(__name__)
# One window of a compacted row, as ``parts`` stores it (little-endian, packed, then Zstandard).
PART = np.dtype([("seq", "<i8"), ("first_ms", "<i8"), ("last_ms", "<i8"), ("samples", "<i4"), ("energy_j", "<f8")])
# How far one pass takes a GPU at most: a first pass over a long history goes a day at a time.
STEP_MS = 24 * MS_PER_HOUR
_MAX_OFFSET_MS = 2**32 - 1  # a row's readings' times are unsigned 32-bit offsets from its first (49.7 days)
DELETE_BATCH = 500  # ids a statement: within SQLite's limit on parameters
_compressor = zstandard.ZstdCompressor(level=3, write_checksum=False, write_content_size=True)
_decompressor = zstandard.ZstdDecompressor()


def encode_parts(parts: np.ndarray) -> bytes:
    return _compressor.compress(np.ascontiguousarray(parts, dtype=PART).tobytes())


def decode_parts(blob: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(_decompressor.decompress(bytes(blob)), dtype=PART)


def window_ends(last_ms: Sequence[int], energy_j: Sequence[float],
                parts: Sequence[bytes | memoryview | None]) -> tuple[np.ndarray, np.ndarray]:
    """Each window's last reading and counted energy, for stored rows given by theirs and their ``parts``: a
    compacted row gives its windows'."""
    if all(p is None for p in parts):
        return np.asarray(last_ms, dtype=np.int64), np.asarray(energy_j, dtype=np.float64)
    lasts: list[Any] = []
    energies: list[Any] = []
    for last, energy, p in zip(last_ms, energy_j, parts, strict=True):
        held = None if p is None else decode_parts(p)
        lasts.append([last] if held is None else held["last_ms"])
        energies.append([energy] if held is None else held["energy_j"])
    return np.concatenate(lasts).astype(np.int64), np.concatenate(energies).astype(np.float64)


def check_chunk_s(chunk_s: int) -> int:
    """A chunk must divide an hour, so that no chunk crosses a partition's (weekly) or retention's bounds."""
    if chunk_s <= 0 or 3600 % chunk_s:
        raise ValueError(f"WATTWISE_COMPACT_CHUNK_S must divide 3600 (an hour), not {chunk_s}")
    return chunk_s


@dataclass
class Compacted:
    """What one pass did."""

    gpus: int = 0
    windows: int = 0  # windows joined into rows
    rows: int = 0  # rows they became
    samples: int = 0
    more: bool = False  # GPUs left for the next pass (a pass takes at most ``max_gpus``)

    def as_json(self) -> dict[str, Any]:
        return {"gpus": self.gpus, "windows": self.windows, "rows": self.rows, "samples": self.samples,
                "more": self.more}


# One compaction task at a time (PostgreSQL advisory lock key: "wattwise compaction" as a number).
_LOCK_KEY = 0x7761_7474_636D_7074


def compact_closed(now_ms: int | None = None, *, max_gpus: int = 500, budget_s: float = 120.0) -> Compacted:
    """The beat task's work: passes over the chunks closed ``WATTWISE_COMPACT_AFTER_S`` before now, until none
    is left or ``budget_s`` has gone by (then ``more`` says the next run goes on). The budget stays well within
    the broker's visibility timeout (300 s), after which a task still running would be handed out again; a
    second task that starts while one runs leaves at once."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    before_ms, chunk_ms = now_ms - settings.WATTWISE_COMPACT_AFTER_S * 1000, settings.WATTWISE_COMPACT_CHUNK_S * 1000
    deadline, total = time.monotonic() + budget_s, Compacted()
    with only_task() as alone:
        if not alone:
            log.info("compaction: another task is compacting; this one leaves it to that one")
            total.more = True
            return total
        while True:
            done = compact(before_ms, chunk_ms, max_gpus=max_gpus, deadline=deadline)
            total.gpus, total.windows = total.gpus + done.gpus, total.windows + done.windows
            total.rows, total.samples, total.more = total.rows + done.rows, total.samples + done.samples, done.more
            if not done.more or not done.gpus or time.monotonic() > deadline:
                return total


@contextmanager
def only_task() -> Iterator[bool]:
    """Whether this is the only compaction running (the beat task or ``manage.py compact_windows``; PostgreSQL,
    elsewhere always)."""
    with try_session_lock((_LOCK_KEY,), "compaction") as alone:
        yield alone


def compact(before_ms: int, chunk_ms: int, *, max_gpus: int = 500, deadline: float | None = None) -> Compacted:
    """Compact every chunk of time that ended by ``before_ms``, for each GPU not read by several streams at once: one
    transaction per GPU, at most ``STEP_MS`` of its time and ``max_gpus`` GPUs a pass."""
    check_chunk_s(chunk_ms // 1000)
    end = before_ms // chunk_ms * chunk_ms
    done = Compacted()
    candidates = list(
        RunGpu.objects.filter(Q(shared=False) | Q(overlap_ms=0), compacted_ms__lt=end, first_ms__lt=end,
                              last_ms__gte=F("compacted_ms"))
        .order_by("id").values_list("id", "compacted_ms", "first_ms", "last_ms")[:max_gpus + 1]
    )
    done.more = len(candidates) > max_gpus
    for run_gpu_id, compacted_ms, first_ms, last_ms in candidates[:max_gpus]:
        if deadline is not None and time.monotonic() > deadline:  # the rest for the next pass
            done.more = True
            break
        since = max(compacted_ms, int(first_ms or 0) // chunk_ms * chunk_ms)  # first_ms < end: never null
        until = min(end, since + STEP_MS)
        try:
            with transaction.atomic():
                windows, rows, samples = _compact_gpu(run_gpu_id, since, until, chunk_ms)
        except _Raced as raced:
            log.warning("compaction of GPU %s left for the next pass: %s", run_gpu_id, raced)
            done.more = True
            continue
        done.gpus += 1
        done.windows += windows
        done.rows += rows
        done.samples += samples
        done.more = done.more or until <= min(end - 1, int(last_ms or 0))  # readings after this pass's stretch
    return done


class _Row(NamedTuple):
    """A window as read for compaction (a named tuple: made straight from the fetched row, tens of thousands a pass)."""

    id: int
    stream: str
    seq: int
    first_ms: int
    last_ms: int
    samples: int
    energy_j: float
    prev_t_ms: int | None
    prev_energy_mj: int | None
    readings: bytes | memoryview


def _compact_gpu(run_gpu_id: int, since: int, until: int, chunk_ms: int) -> tuple[int, int, int]:
    """Join the GPU's windows that start in [since, until) and continue each other within a chunk: (windows
    joined, rows made, samples in them). Moves the GPU's ``compacted_ms`` to ``until``."""
    # Two passes at once (a slow pass overlapping the next) take turns on the GPU's row, and the second finds
    # the stretch done: joining the same windows twice would store their readings twice.
    locked = RunGpu.objects.select_for_update().filter(pk=run_gpu_id).values_list("compacted_ms", flat=True)
    if next(iter(locked), until) >= until:
        return 0, 0, 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(_Row._fields)} FROM {SampleWindow._meta.db_table} WHERE run_gpu_id = %s "
            "AND first_ms >= %s AND first_ms < %s AND parts IS NULL ORDER BY stream, seq",
            [run_gpu_id, since, until],
        )
        rows = list(map(_Row._make, cursor.fetchall()))
    made: list[SampleWindow] = []
    gone: list[int] = []
    if len(rows) > 1:
        decoded = columns.decode_many([row.readings for row in rows])  # every row's readings end to end
        offsets = np.concatenate(([0], np.cumsum([row.samples for row in rows]))).tolist()
        for a, b in _runs(rows, decoded["energy_mj"], offsets, chunk_ms):
            made.append(_joined(run_gpu_id, rows[a:b], {name: values[offsets[a]:offsets[b]]
                                                         for name, values in decoded.items()}))
            gone += [row.id for row in rows[a:b]]
    if gone and _delete(run_gpu_id, since, until, gone) != len(gone):
        raise _Raced(f"{len(gone)} windows to join, fewer found to delete: another pass or a deletion got there first")
    if gone:
        names = (*batch_store.WINDOW_COLUMNS, "parts")
        write_rows(SampleWindow._meta.db_table, names, (*batch_store.WINDOW_TYPES, "bytea"),
                   [[getattr(window, name) for name in names] for window in made])
    longest = max((w.last_ms - (w.first_ms if w.prev_t_ms is None else w.prev_t_ms) for w in made), default=0)
    RunGpu.objects.filter(pk=run_gpu_id).update(
        compacted_ms=Greatest(F("compacted_ms"), until), max_window_ms=Greatest(F("max_window_ms"), longest))
    return len(gone), len(made), sum(w.samples for w in made)


class _Raced(Exception):
    """The windows read were no longer all there to delete: nothing of the GPU's pass is kept."""


def _delete(run_gpu_id: int, since: int, until: int, ids: list[int]) -> int:
    """Delete the GPU's windows ``ids`` (the time bounds let PostgreSQL look only in the partitions holding them):
    how many were there."""
    table = SampleWindow._meta.db_table
    where = "run_gpu_id = %s AND first_ms >= %s AND first_ms < %s"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # As one array literal: psycopg would dump a day's 17,280 ids one by one.
            cursor.execute(f"DELETE FROM {table} WHERE {where} AND id = ANY(%s::bigint[])",
                           [run_gpu_id, since, until, "{" + ",".join(map(str, ids)) + "}"])
            return int(cursor.rowcount)
        deleted = 0
        for start in range(0, len(ids), DELETE_BATCH):
            batch = ids[start:start + DELETE_BATCH]
            cursor.execute(f"DELETE FROM {table} WHERE {where} AND id IN ({', '.join(['%s'] * len(batch))})",
                           [run_gpu_id, since, until, *batch])
            deleted += int(cursor.rowcount)
        return deleted


def _runs(rows: Sequence[_Row], energy_mj: np.ndarray, offsets: list[int], chunk_ms: int) -> Iterator[tuple[int, int]]:
    """Ranges [a, b) of rows (ordered by stream, then batch) of two or more that lie in one chunk and each continue
    the one before: the next batch, whose previous reading (time and counter) is the last one's last reading."""
    a = 0
    for b in range(1, len(rows) + 1):
        row, previous = (rows[b] if b < len(rows) else None), rows[b - 1]
        if row is not None and row.stream == previous.stream and row.seq == previous.seq + 1 \
                and row.first_ms // chunk_ms == rows[a].first_ms // chunk_ms and row.prev_t_ms == previous.last_ms \
                and row.last_ms - rows[a].first_ms <= _MAX_OFFSET_MS \
                and row.prev_energy_mj == int(energy_mj[offsets[b] - 1]):
            continue
        if b - a > 1:
            yield a, b
        a = b


def _joined(run_gpu_id: int, run: Sequence[_Row], decoded: dict[str, np.ndarray]) -> SampleWindow:
    """One row of ``run``'s windows, given their readings end to end."""
    first = run[0]
    counts = np.array([row.samples for row in run], dtype=np.int64)
    starts = np.array([row.first_ms for row in run], dtype=np.int64) - first.first_ms
    decoded = {**decoded, "t_offset_ms": (decoded["t_offset_ms"].astype(np.int64) + np.repeat(starts, counts))
               .astype(columns.DTYPES["t_offset_ms"])}
    parts = np.array([(row.seq, row.first_ms, row.last_ms, row.samples, row.energy_j) for row in run], dtype=PART)
    return SampleWindow(
        run_gpu_id=run_gpu_id, stream=first.stream, seq=first.seq, first_ms=first.first_ms, last_ms=run[-1].last_ms,
        samples=int(counts.sum()), energy_j=math.fsum(row.energy_j for row in run), prev_t_ms=first.prev_t_ms,
        prev_energy_mj=first.prev_energy_mj, readings=columns.encode(decoded), parts=encode_parts(parts),
    )


def windows_in_row(row: Sequence[Any]) -> list[list[Any]]:
    """A compacted row (run_gpu_id, stream, prev_t_ms, prev_energy_mj, readings, parts) as the windows it
    holds, each a row of ``_EXPANDED`` columns, with its own readings encoded again: what was stored before."""
    run_gpu_id, stream, prev_t_ms, prev_energy_mj, readings, parts = row
    held = decode_parts(parts)
    values = columns.decode(readings)
    t_ms = values["t_offset_ms"].astype(np.int64)
    ends = np.cumsum(held["samples"].astype(np.int64))
    out: list[list[Any]] = []
    for k, part in enumerate(held.tolist()):
        seq, first_ms, last_ms, samples, energy_j = part
        a, b = int(ends[k]) - samples, int(ends[k])
        window = {name: v[a:b] for name, v in values.items()}
        window["t_offset_ms"] = (t_ms[a:b] - t_ms[a]).astype(columns.DTYPES["t_offset_ms"])  # from its first
        if k:  # continues the window before it: its previous reading is that one's last
            prev_t_ms, prev_energy_mj = int(out[-1][4]), int(values["energy_mj"][a - 1])
        out.append([run_gpu_id, stream, seq, first_ms, last_ms, samples, energy_j, prev_t_ms, prev_energy_mj,
                    columns.encode(window)])
    return out


# The window columns as telemetry 0019 left them: the same as ``batch_store.WINDOW_COLUMNS`` today, written out
# because migrating back past 0019 must keep working after a later migration adds a column there.
_EXPANDED = ("run_gpu_id", "stream", "seq", "first_ms", "last_ms", "samples", "energy_j", "prev_t_ms",
             "prev_energy_mj", "readings")


def expand_all(cursor: Any, table: str = "dashboard_samplewindow", batch: int = 500) -> int:
    """Turn every compacted row back into the windows it holds (migrating back past ``parts``): rows expanded.
    The windows get new ids; their columns and bytes are those stored before compaction."""
    expanded, after_id = 0, -1
    while True:
        cursor.execute(f"SELECT id, first_ms, run_gpu_id, stream, prev_t_ms, prev_energy_mj, readings, parts "
                       f"FROM {table} WHERE parts IS NOT NULL AND id > %s ORDER BY id LIMIT {int(batch)}", [after_id])
        rows = cursor.fetchall()
        if not rows:
            return expanded
        windows = [w for row in rows for w in windows_in_row([*row[2:6], bytes(row[6]), bytes(row[7])])]
        cursor.executemany(f"INSERT INTO {table} ({', '.join(_EXPANDED)}) VALUES ({', '.join(['%s'] * len(_EXPANDED))})",
                           windows)
        # By key and partition key, so PostgreSQL looks only in the partitions that hold them.
        cursor.execute(f"DELETE FROM {table} WHERE (id, first_ms) IN ({', '.join(['(%s, %s)'] * len(rows))})",
                       [value for row in rows for value in row[:2]])
        expanded, after_id = expanded + len(rows), int(rows[-1][0])

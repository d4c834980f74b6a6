"""Stretches of sample time, and the stored windows that overlap one, found through the indexes alone.

``TimeRange`` is the one type for "a stretch of sample time": epoch milliseconds, both ends included.
Pages, exports and the API all read samples through it; each converts its own query parameters at
parsing (the CSV export's ``to`` is exclusive, and milliseconds are integers, so ``to - 1`` is exact).

A window holds one GPU's readings from ``first_ms`` to ``last_ms`` and has no fixed length, and several
agent streams may record one GPU at once (a misconfiguration that ingest still stores). The windows
overlapping a range are:

* those that *start* inside it: a range scan of the ``(run_gpu, first_ms)`` index;
* those that start before it and reach into it. Ingest keeps each stream's windows consecutive, so per
  GPU and stream only the stream's latest window starting before the range can, and no earlier than the
  GPU's longest window before it: one probe, or a short walk, of the same index. Streams come from
  ``RunNode`` rows, which ingest writes for every batch.

:func:`reach_back_ms` finds the earliest of the second kind for any number of GPUs in one statement;
:func:`overlapping` turns it into one index range scan.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from django.db import connection, transaction
from django.db.models import QuerySet

from dashboard.telemetry.models import Gpu, RunGpu, RunNode, SampleWindow
from planner.units import MS_PER_S

EARLIEST_MS = 0
"""The first instant a range can hold: 1970-01-01T00:00:00Z."""
LATEST_MS = 253_402_300_799_999
"""The last instant a range can hold: 9999-12-31T23:59:59.999Z."""


def ms_to_datetime(t_ms: int) -> datetime:
    """A sample time (epoch milliseconds) as an aware UTC datetime."""
    return datetime.fromtimestamp(t_ms / MS_PER_S, tz=UTC)


@dataclass(frozen=True)
class TimeRange:
    """A stretch of sample time in epoch milliseconds: ``from_ms <= t_ms <= to_ms``.

    ``to_ms < from_ms`` is an empty range (a picked range that misses the data clips to one).
    """

    from_ms: int
    to_ms: int

    @property
    def empty(self) -> bool:
        return self.to_ms < self.from_ms

    def within(self, bounds: TimeRange) -> TimeRange:
        """The part of this range inside ``bounds`` (empty when they do not meet)."""
        return TimeRange(max(self.from_ms, bounds.from_ms), min(self.to_ms, bounds.to_ms))

    def mask(self, t_ms: np.ndarray) -> np.ndarray:
        """Which of the timestamps ``t_ms`` lie inside the range."""
        return (t_ms >= self.from_ms) & (t_ms <= self.to_ms)


ALL_TIME = TimeRange(EARLIEST_MS, LATEST_MS)
"""Every instant: what a request that bounds neither end reads."""


def reach_back_ms(run_gpu_ids: Sequence[int], from_ms: int) -> int:
    """The earliest ``first_ms`` of a window of these GPUs that starts before ``from_ms`` and reaches it;
    ``from_ms`` when none does. Every window overlapping a range that starts at ``from_ms`` then starts
    at or after this bound, so the ``(run_gpu, first_ms)`` index finds them all.

    One statement, whatever the number of GPUs and streams, on PostgreSQL and SQLite alike. Per GPU and
    stream:

    * the GPU's latest window starting before ``from_ms`` (one backward probe of the time index) is its
      stream's candidate;
    * any other stream's candidate is its latest window starting less than the GPU's longest window
      (``RunGpu.max_window_ms``) before ``from_ms``: no window of the GPU that reaches ``from_ms`` starts
      earlier, so this walks a few windows of the time index back, never to a stream that ended hours
      before (an agent restarted).
    """
    ids = ", ".join(str(int(i)) for i in run_gpu_ids)
    if not ids:
        return from_ms
    window, run_gpu, gpu, run_node = (m._meta.db_table for m in (SampleWindow, RunGpu, Gpu, RunNode))
    latest = f"FROM {window} a WHERE a.run_gpu_id = p.run_gpu_id AND a.first_ms < %(from)s"
    sql = (
        f"SELECT MIN(w.first_ms) FROM (SELECT p.run_gpu_id, p.stream, CASE "
        f"WHEN p.stream = (SELECT a.stream {latest} ORDER BY a.first_ms DESC LIMIT 1) "
        f"THEN (SELECT MAX(a.first_ms) {latest}) "
        # "stream || ''" serves no index, so this walks the time index back from from_ms.
        f"ELSE (SELECT MAX(b.first_ms) FROM {window} b WHERE b.run_gpu_id = p.run_gpu_id "
        f"AND b.stream || '' = p.stream AND b.first_ms < %(from)s AND b.first_ms >= %(from)s - p.max_window_ms) "
        f"END AS first_ms FROM (SELECT rg.id AS run_gpu_id, rg.max_window_ms, rn.stream FROM {run_gpu} rg "
        f"JOIN {gpu} g ON g.id = rg.gpu_id JOIN {run_node} rn ON rn.run_id = rg.run_id AND rn.node_id = g.node_id "
        f"WHERE rg.id IN ({ids})) p"
        f") c JOIN {window} w ON w.run_gpu_id = c.run_gpu_id AND w.first_ms = c.first_ms AND w.stream = c.stream "
        f"WHERE w.last_ms >= %(from)s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"from": from_ms})
        (found,) = cursor.fetchone()
    return from_ms if found is None else min(int(found), from_ms)


def overlapping(run_gpu_ids: Sequence[int], span: TimeRange) -> QuerySet[SampleWindow]:
    """The windows of these GPUs holding any reading in ``span``: one range scan of the
    ``(run_gpu, first_ms)`` index from :func:`reach_back_ms`, unordered."""
    lower_ms = span.from_ms if span.from_ms <= EARLIEST_MS else reach_back_ms(run_gpu_ids, span.from_ms)
    return SampleWindow.objects.filter(
        run_gpu_id__in=list(run_gpu_ids), first_ms__gte=lower_ms, first_ms__lte=span.to_ms,
        last_ms__gte=span.from_ms,
    )


@contextmanager
def one_snapshot() -> Iterator[None]:
    """The reads inside see the windows as they were at one moment, however many statements they take.

    Reading a span takes two at least (how far back to look, ``reach_back_ms``, then the windows), a page of
    samples one per chunk of windows: if compaction (``dashboard.telemetry.compaction``) committed between
    two of them, a row that now starts earlier would be missed. On PostgreSQL the block is one REPEATABLE
    READ transaction. Inside a transaction already (whose snapshot is the caller's to choose) it is nothing,
    and on SQLite too: there a read can still see a pass half way (the embedded single-machine default, where
    the beat task that compacts runs only if started by hand).
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield

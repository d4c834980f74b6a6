"""Whether a run holds every sample its agents sent: per agent session (stream), the samples it declared
when it closed (``close_run``'s ``samples_sent``) against those stored, and the batch numbers missing.

Batches of a stream are numbered from 0; a closed stream says its last number (``last_seq``), so every
number up to it that has no receipt is missing. A stream not closed (still sending, or its agent killed)
declares nothing yet: only gaps below its highest stored number are known missing, and whatever it had not
sent when it stopped is after ``last_stored_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, Sum

from dashboard.telemetry import retention
from dashboard.telemetry.models import BatchReceipt, Run, RunNode


@dataclass(frozen=True)
class StreamCompleteness:
    node: str
    stream: str
    closed: bool
    samples_declared: int | None  # None until the stream closed
    samples_stored: int
    batches_stored: int
    last_seq: int | None  # the last batch number: declared when closed, else the highest stored
    missing_seqs: list[tuple[int, int]]  # inclusive ranges of batch numbers never stored

    @property
    def batches_missing(self) -> int:
        return sum(last - first + 1 for first, last in self.missing_seqs)

    @property
    def samples_missing(self) -> int | None:
        return None if self.samples_declared is None else self.samples_declared - self.samples_stored

    @property
    def complete(self) -> bool:
        return self.closed and not self.missing_seqs and self.samples_missing == 0

    @property
    def missing_text(self) -> str:
        """The missing batch numbers, e.g. ``3, 7-9``."""
        return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in self.missing_seqs)

    def as_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "stream": self.stream,
            "closed": self.closed,
            "complete": self.complete,
            "samples_declared": self.samples_declared,
            "samples_stored": self.samples_stored,
            "batches_stored": self.batches_stored,
            "last_seq": self.last_seq,
            "missing_seqs": [list(r) for r in self.missing_seqs],
        }


@dataclass(frozen=True)
class Completeness:
    streams: list[StreamCompleteness]
    # Some of the run's batch receipts were dropped with its raw data (dashboard.telemetry.retention): what
    # was stored can no longer be checked against what was sent, and no batch is reported missing.
    receipts_expired: bool = False

    @property
    def closed(self) -> bool:
        return bool(self.streams) and all(s.closed for s in self.streams)

    @property
    def samples_declared(self) -> int | None:
        """Every stream's declared samples, once all have closed."""
        return sum(s.samples_declared or 0 for s in self.streams) if self.closed else None

    @property
    def samples_stored(self) -> int:
        return sum(s.samples_stored for s in self.streams)

    @property
    def batches_missing(self) -> int:
        return sum(s.batches_missing for s in self.streams)

    @property
    def complete(self) -> bool:
        return not self.receipts_expired and self.closed and all(s.complete for s in self.streams)

    @property
    def incomplete_streams(self) -> list[StreamCompleteness]:
        return [s for s in self.streams if not s.complete]

    def as_json(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "samples_declared": self.samples_declared,
            "samples_stored": self.samples_stored,
            "batches_missing": self.batches_missing,
            "receipts_expired": self.receipts_expired,
            "streams": [s.as_json() for s in self.streams],
        }


def run_completeness(run: Run) -> Completeness:
    """What the run holds of what its agents sent, per stream (a few aggregate queries)."""
    stored: dict[tuple[int, str], dict[str, Any]] = {
        (row["node_id"], row["stream"]): dict(row)
        for row in BatchReceipt.objects.filter(run=run).values("node_id", "stream")
        .annotate(batches=Count("id"), samples=Sum("samples"), top=Max("seq"))
    }
    sessions = {(rn.node_id, rn.stream): rn for rn in RunNode.objects.filter(run=run).select_related("node")}
    names = {rn.node_id: rn.node.name for rn in sessions.values()}
    expired = retention.receipts_expired(run.started_at or run.created_at)
    streams = []
    for key in sorted(set(stored) | set(sessions), key=lambda k: (names.get(k[0], ""), k[1])):
        session, row = sessions.get(key), stored.get(key, {})
        streams.append(_stream(run, key, session, row, names.get(key[0], ""), gaps=not expired))
    return Completeness(streams, receipts_expired=expired)


def _stream(run: Run, key: tuple[int, str], session: RunNode | None, row: dict[str, Any],
            node_name: str, *, gaps: bool = True) -> StreamCompleteness:
    closed = session is not None and session.closed_at is not None
    batches, top = row.get("batches", 0), row.get("top")
    last_seq = session.last_seq if closed and session is not None else top
    missing: list[tuple[int, int]] = []
    if gaps and last_seq is not None and batches != last_seq + 1:
        seqs = BatchReceipt.objects.filter(run=run, node_id=key[0], stream=key[1]).values_list("seq", flat=True)
        missing = _gaps(sorted(seqs), last_seq)
    return StreamCompleteness(
        node=node_name,
        stream=key[1],
        closed=closed,
        samples_declared=session.samples_declared if closed and session is not None else None,
        samples_stored=int(row.get("samples") or 0),
        batches_stored=batches,
        last_seq=last_seq,
        missing_seqs=missing,
    )


def _gaps(seqs: list[int], last: int) -> list[tuple[int, int]]:
    """Inclusive ranges of 0..last not in ``seqs`` (sorted)."""
    gaps, expected = [], 0
    for seq in seqs:
        if seq > last:
            break
        if seq > expected:
            gaps.append((expected, seq - 1))
        expected = max(expected, seq + 1)
    if expected <= last:
        gaps.append((expected, last))
    return gaps

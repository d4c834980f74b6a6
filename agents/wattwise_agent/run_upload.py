"""Uploading a run file: every envelope, checked first, signed with the given token, sent in order.

Sending goes through the outbox (``wattwise_agent.outbox``) with an in-memory spool, so the app's answers
mean what they mean to a streaming agent: several envelopes per request, waits on ``Retry-After``, an
envelope the app can never accept set aside with its reason, a rejected token stops everything. Nothing
is sent from a file that fails its check (``read_run_file``). An upload is idempotent: the app stores each
batch once ((node, stream, seq) and the body's digest), so a second upload of the same file, or one
after an interrupted upload, stores nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattwise_agent.outbox import Outbox, signed_with
from wattwise_agent.run_file import Recording, read_run_file
from wattwise_agent.spool import Envelope, MemorySpool
from wattwise_agent.transport import MAX_REQUEST_ENVELOPES, Transport


@dataclass
class UploadReport:
    """What an upload did; ``as_dict()`` is the JSON line ``wattwise-agent upload`` prints."""

    recording: Recording
    sent: int  # envelopes the app (or the broker) took
    unsent: int  # envelopes it could not take before the timeout (the app down or busy)
    refused: list[dict[str, Any]] = field(default_factory=list)  # set aside for good, with the app's reasons
    token_rejected: str | None = None

    @property
    def complete(self) -> bool:
        return self.unsent == 0 and not self.refused and self.token_rejected is None

    def as_dict(self) -> dict[str, Any]:
        recording = self.recording
        return {
            "file": str(recording.path),
            "runs": recording.runs,
            "streams": len(recording.streams),
            "envelopes": recording.messages,
            "batches": recording.batches,
            "samples": recording.samples,
            "sent": self.sent,
            "unsent": self.unsent,
            "refused": len(self.refused),
            "unclosed": recording.unclosed,
        }


def upload_run_file(path: Path | str, transport: Transport, *, token: str, timeout_s: float = 60.0) -> UploadReport:
    """Check ``path`` (RunFileError: nothing sent), then send its envelopes signed with ``token``."""
    return upload_recording(read_run_file(path), transport, token=token, timeout_s=timeout_s)


def upload_recording(recording: Recording, transport: Transport, *, token: str, timeout_s: float = 60.0) -> UploadReport:
    """Send a checked run file's envelopes in order, signed with ``token``, a request's worth at a time.

    When the app is down or busy the upload waits for it (up to ``timeout_s`` each time) before reading
    on, so a long run's file never has to fit in memory; if it stays away, the rest is left unsent.
    """
    reseal = signed_with(token)
    spool = MemorySpool()
    outbox = Outbox(transport, spool)
    posted = 0
    chunk: list[Envelope] = []
    for envelope in recording.envelopes():
        chunk.append(reseal(envelope))
        if len(chunk) < MAX_REQUEST_ENVELOPES:
            continue
        posted += _post(outbox, chunk)
        chunk = []
        if outbox.fatal is not None or (len(spool) and outbox.flush(timeout_s)):
            break
    else:
        posted += _post(outbox, chunk)
        outbox.flush(timeout_s)
    return UploadReport(
        recording=recording,
        sent=outbox.delivered,
        unsent=len(spool) + recording.messages - posted,
        refused=list(spool.refused),
        token_rejected=outbox.fatal.reason if outbox.fatal is not None else None,
    )


def _post(outbox: Outbox, envelopes: list[Envelope]) -> int:
    if envelopes:
        outbox.post_many(envelopes)
    return len(envelopes)

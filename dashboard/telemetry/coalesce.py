"""Many batches received at once, stored as one unit of work, each with its own outcome.

The consumer that takes every message waiting (``dashboard.telemetry.consumer``: what agents publish to the
broker and what the HTTP ingest queued, one task per envelope) hands their batches here together. Each is admitted on its own, as ``ingest.ingest_batch``
admits one (its token and signature, the wire models, the clock): a refusal is recorded for that message
alone. The batches that pass are stored in one transaction by ``group_store``. When the group cannot be
stored as one (a replayed sequence number, a window that does not continue its stream, a GPU several streams
write, a value the database refuses, a bug), the transaction is rolled back and each batch is stored alone
by ``ingest.ingest_batch``, which stores the good ones and records what is wrong with the others: one bad
message never fails the rest. A copy of a batch that is already in the group is stored (as a duplicate) after it.

``Group`` keeps each message's outcome as it is decided, so that ``delivery.deliver_group``, which runs it again
when the database went away, never records a refusal twice nor stores a batch twice.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DataError, IntegrityError, InterfaceError, OperationalError, transaction

from dashboard.telemetry import ingest, liveness
from dashboard.telemetry.admission import (
    Outcome,
    Rejected,
    Status,
    authenticate,
    concerning,
    out_of_range,
    record_rejection,
    refuse_future,
)
from dashboard.telemetry.group_store import Admitted, NotAsOne, store_group
from dashboard.telemetry.ingest_memo import IngestMemo
from wattwise_agent.wire import KIND_BATCH, WireError, decode_batch

log = logging.getLogger(__name__)

# What a database that went away raises (``delivery.UNREACHABLE``): the caller waits and runs the group again.
_UNREACHABLE = (OperationalError, InterfaceError)


class Group:
    """The batch envelopes received together, and what became of each (``None``: not decided yet)."""

    def __init__(self, envelopes: list[Any]) -> None:
        self.envelopes = envelopes
        self.outcomes: list[Outcome | None] = [None] * len(envelopes)

    def undecided(self) -> list[int]:
        return [i for i, outcome in enumerate(self.outcomes) if outcome is None]

    def run(self, memo: IngestMemo | None) -> list[Outcome]:
        """Admit, store as one (else one by one); raises what a database that went away raises."""
        admitted, repeats, keys = [], [], set()
        for i in self.undecided():
            item = self._admit(i, memo)
            if item is None:
                continue
            if item.key in keys:
                repeats.append(i)  # the same batch twice in the group: the copy comes after the group
            else:
                keys.add(item.key)
                admitted.append(item)
        if admitted:
            self._store(admitted, memo)
        for i in repeats:
            self.outcomes[i] = ingest.ingest_batch(self.envelopes[i], memo)
        return [outcome for outcome in self.outcomes if outcome is not None]

    def _admit(self, i: int, memo: IngestMemo | None) -> Admitted | None:
        envelope = self.envelopes[i]
        try:
            node, payload, digest = authenticate(envelope, KIND_BATCH, memo)
            with concerning(node):
                batch = decode_batch(payload)
                refuse_future(batch.window_end_ms, "samples lie")
        except (Rejected, WireError) as exc:
            self.outcomes[i] = record_rejection(KIND_BATCH, envelope, exc)
            return None
        except DataError as exc:
            self.outcomes[i] = record_rejection(KIND_BATCH, envelope, out_of_range(exc))
            return None
        return Admitted(i, envelope, node, batch, digest)

    def _store(self, admitted: list[Admitted], memo: IngestMemo | None) -> None:
        try:
            with transaction.atomic():
                stored = store_group(admitted, memo)
        except Exception as exc:
            if isinstance(exc, _UNREACHABLE):
                raise
            if not isinstance(exc, NotAsOne | Rejected | WireError | DataError | IntegrityError):
                log.exception("a group of %d batches could not be stored as one; storing them one by one",
                              len(admitted))
            if memo is not None:
                memo.forget()  # ids learnt in the transaction just rolled back
            for item in admitted:
                self.outcomes[item.index] = ingest.ingest_batch(item.envelope, memo)
            return
        for index, outcome in stored.items():
            self.outcomes[index] = outcome
        liveness.resume(o.run_id for o in stored.values() if o.status == Status.STORED and o.run_id)


def ingest_batches(envelopes: list[Any], memo: IngestMemo | None = None) -> list[Outcome]:
    """Store batch envelopes received together; their outcomes, in order (``Group.run``)."""
    return Group(envelopes).run(memo)

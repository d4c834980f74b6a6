"""Ingest: turn signed agent messages into stored runs, windows and rollups.

Each message is first admitted (``dashboard.telemetry.admission``: the token that signed it, its
signature, its clock) and read with the wire models (``wattwise_agent.wire``); nothing is written before that
passed. A run's open and close are stored here; a batch is stored by ``dashboard.telemetry.batch_store``
in one transaction, exactly once. Every refusal is recorded (``Rejection``) with its reason and code,
and writes nothing else. The Celery tasks (``tasks``) and the seeding of the demo call these functions.
"""

from __future__ import annotations

from typing import Any

from django.db import DataError, IntegrityError, transaction

from dashboard.telemetry import batch_store, liveness
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
from dashboard.telemetry.ingest_memo import IngestMemo, run_for
from dashboard.telemetry.models import Node, Run, RunNode, RunTag
from dashboard.telemetry.signals import announce, run_closed
from dashboard.telemetry.windows import ms_to_datetime
from wattwise_agent.wire import (
    KIND_BATCH,
    KIND_CLOSE_RUN,
    KIND_OPEN_RUN,
    CloseRun,
    OpenRun,
    WireError,
    decode_batch,
    parse,
)

__all__ = ["Outcome", "Status", "close_run", "ingest_batch", "open_run"]


def open_run(envelope: Any, memo: IngestMemo | None = None) -> Outcome:
    """An agent starts streaming a run: create the run if needed and note this node's session."""
    try:
        node, payload, _ = authenticate(envelope, KIND_OPEN_RUN, memo)
        with concerning(node):
            message = parse(OpenRun, payload)
        with transaction.atomic():
            run = _locked_run(node, message.run, simulated=message.simulated)
            if RunNode.objects.filter(run=run, node=node, stream=message.stream, closed_at__isnull=False).exists():
                # A late redelivery (a worker killed before acknowledging it): the session is over, and
                # opening it again would leave the run running forever.
                return Outcome(Status.DUPLICATE, f"session {message.stream} of run {message.run!r} already closed",
                               run_id=run.pk)
            started = ms_to_datetime(message.started_ms)
            run.status = Run.Status.RUNNING
            run.started_at = min(run.started_at, started) if run.started_at else started
            run.ended_at = None
            run.save(update_fields=["status", "started_at", "ended_at"])
            RunTag.objects.bulk_create([RunTag(run=run, name=t) for t in message.tags], ignore_conflicts=True)
            run_node, _ = RunNode.objects.get_or_create(run=run, node=node, stream=message.stream)
            run_node.opened_at = started
            run_node.backend = message.backend[:32]
            run_node.host = message.host
            run_node.zone, run_node.region = message.zone or "", message.region or ""
            run_node.save()
        return Outcome(Status.OPENED, f"run {message.run!r} on {node.name}", run_id=run.pk)
    except (Rejected, WireError) as exc:
        return record_rejection(KIND_OPEN_RUN, envelope, exc)
    except DataError as exc:
        return record_rejection(KIND_OPEN_RUN, envelope, out_of_range(exc))


def _locked_run(node: Node, name: str, *, simulated: bool) -> Run:
    """The run, locked for this transaction.

    Sessions of one run (the ranks of a torchrun job) open and close concurrently; without the lock two
    closing sessions each still see the other open and neither finishes the run, and two opening sessions
    each keep their own ``started_at``.
    """
    return Run.objects.select_for_update().get(pk=run_for(node, name, simulated=simulated).pk)


def close_run(envelope: Any, memo: IngestMemo | None = None) -> Outcome:
    """An agent finished: close its session; the run is finished when every session is closed."""
    try:
        node, payload, _ = authenticate(envelope, KIND_CLOSE_RUN, memo)
        with concerning(node):
            message = parse(CloseRun, payload)
        with transaction.atomic():
            run = _locked_run(node, message.run, simulated=False)
            run_node, _ = RunNode.objects.get_or_create(run=run, node=node, stream=message.stream)
            run_node.closed_at = ms_to_datetime(message.ended_ms)
            run_node.last_seq = message.last_seq
            run_node.samples_declared = message.samples_sent
            if message.work:  # older agents send none: keep what there is
                run_node.work = dict(message.work)
            run_node.save()
            if not run.run_nodes.filter(closed_at__isnull=True).exists():
                run.status = Run.Status.FINISHED
                run.ended_at = max(rn.closed_at for rn in run.run_nodes.all() if rn.closed_at)
                run.save(update_fields=["status", "ended_at"])
                announce(run_closed, run.pk)
        return Outcome(Status.CLOSED, f"run {message.run!r} on {node.name}", run_id=run.pk)
    except (Rejected, WireError) as exc:
        return record_rejection(KIND_CLOSE_RUN, envelope, exc)
    except DataError as exc:
        return record_rejection(KIND_CLOSE_RUN, envelope, out_of_range(exc))


def ingest_batch(envelope: Any, memo: IngestMemo | None = None) -> Outcome:
    """Store one batch exactly once, or record why it was refused.

    ``memo``: what this worker process remembers (``dashboard.telemetry.ingest_memo``); None looks
    everything up.
    """
    try:
        try:
            outcome = _receive_batch(envelope, memo)
        except IntegrityError:
            # Most likely an id this process remembered whose row is gone: forget everything, once more afresh.
            if memo is not None:
                memo.forget()
            outcome = _receive_batch(envelope, memo)
        if outcome.status == Status.STORED and outcome.run_id is not None:
            liveness.resume([outcome.run_id])
        return outcome
    except (Rejected, WireError) as exc:
        return record_rejection(KIND_BATCH, envelope, exc)
    except DataError as exc:
        return record_rejection(KIND_BATCH, envelope, out_of_range(exc))


def _receive_batch(envelope: Any, memo: IngestMemo | None) -> Outcome:
    node, payload, digest = authenticate(envelope, KIND_BATCH, memo)
    with concerning(node):
        batch = decode_batch(payload)
        refuse_future(batch.window_end_ms, "samples lie")
        with transaction.atomic():
            return batch_store.store_batch(node, batch, digest, memo)

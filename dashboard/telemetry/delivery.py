"""What a worker does with an agent message it took from the broker: store it, refuse it with a recorded
reason, or keep it as a dead letter. It is never acknowledged and dropped.

* The database unreachable (a restart, a failover): the task closes the dead connection and tries again,
  0.5 s doubling to 8 s apart, for up to ``WATTWISE_DB_RETRY_S``. Celery's Django fixup reuses a
  connection for ``CELERY_DB_REUSE_MAX`` tasks and never checks it, so without this one restart broke every
  task that followed.
* Still failing then, or failing for a reason no check foresaw (a bug): the envelope is kept whole as a
  ``DeadLetter`` with the error, for an admin to see and replay (``replay``).
* Not even that can be written: the message is rejected back onto the queue, to be tried again.
* The consumer told to stop while it waits for the database (``stop``): the waiting ends and the messages
  not decided yet go back onto the queue, for the next consumer (a Celery task never stops early).

Batches received together (``deliver_group``: the coalescing consumer, ``dashboard.telemetry.consumer``) are
stored as one (``dashboard.telemetry.coalesce``) under the same rules, each message with its own outcome: one
that fails for a reason no check foresaw is delivered alone, so it alone becomes a dead letter.

Tasks a worker runs come here (``run_task``); a task applied eagerly (no broker, or a test) runs as a plain
call. Each task's receiver is registered by name: telemetry's here, the planner's stage profiles by its app
(``receives``), so that a dead letter of either kind can be replayed from any process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import Reject
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from dashboard.telemetry import coalesce, ingest, ingest_memo
from dashboard.telemetry.admission import Outcome
from dashboard.telemetry.broker_link import pause
from dashboard.telemetry.ingest_memo import IngestMemo
from dashboard.telemetry.models import DeadLetter
from wattwise_agent.wire import TASK_CLOSE_RUN, TASK_INGEST_BATCH, TASK_OPEN_RUN

log = logging.getLogger(__name__)

FIRST_WAIT_S = 0.5
LONGEST_WAIT_S = 8.0
# What a database that went away raises; anything else is not cured by waiting.
UNREACHABLE = (OperationalError, InterfaceError)
DEAD_LETTER = "dead_letter"

Receive = Callable[[Any, IngestMemo | None], Outcome]
RECEIVERS: dict[str, Receive] = {
    TASK_OPEN_RUN: ingest.open_run,
    TASK_INGEST_BATCH: ingest.ingest_batch,
    TASK_CLOSE_RUN: ingest.close_run,
}


def _never() -> bool:
    return False


def receives(task: str, receive: Receive) -> None:
    """Register ``receive`` as what stores (or refuses) the messages of ``task``."""
    RECEIVERS[task] = receive


def run_task(task: Task, name: str, envelope: Any) -> dict[str, Any]:
    """What a Celery task of agent messages does: ``deliver`` in a worker; a plain call when eager."""
    if task.request.called_directly or task.request.is_eager:
        return RECEIVERS[name](envelope, None).as_dict()
    return deliver(name, envelope, ingest_memo.for_this_worker())


def deliver(task: str, envelope: Any, memo: IngestMemo | None, stop: Callable[[], bool] = _never) -> dict[str, Any]:
    """Run the receiver of ``task`` on ``envelope`` in a worker: its outcome, or a dead letter's.

    Raises ``Reject`` (requeue) when not even the dead letter could be written, or when ``stop()`` (the consumer
    was told to stop) while it waits for the database: the message goes back to the queue, not to a dead letter.
    """
    receive = RECEIVERS[task]
    _close_failed_connections()
    give_up_at = time.monotonic() + settings.WATTWISE_DB_RETRY_S
    wait_s = FIRST_WAIT_S
    while True:
        try:
            return receive(envelope, memo).as_dict()
        except UNREACHABLE as exc:
            if time.monotonic() + wait_s > give_up_at:
                return _keep(task, envelope, exc)
            log.warning("%s: database unreachable (%s); trying again in %.1f s", task, _one_line(exc), wait_s)
            _close_connections()
            if memo is not None:
                memo.forget()  # ids it learnt in a transaction that was rolled back
            if _stopped_waiting(wait_s, stop):
                raise Reject(f"{task}: stopping while the database is unreachable", requeue=True) from exc
            wait_s = min(wait_s * 2, LONGEST_WAIT_S)
        except Exception as exc:  # whatever it is, the message is kept, not dropped
            log.exception("%s: could not store or refuse a message", task)
            return _keep(task, envelope, exc)


def deliver_group(
    envelopes: list[Any], memo: IngestMemo | None, stop: Callable[[], bool] = _never,
) -> list[dict[str, Any] | None]:
    """Batch envelopes received together, stored as one where they can be: each one's outcome or dead letter;
    None for those still undecided when ``stop()`` (the consumer was told to stop) while it waits for the
    database: they go back to the queue.

    Raises ``Reject`` (requeue) when a dead letter could not be written; nothing is acknowledged then.
    """
    group = coalesce.Group(envelopes)
    _close_failed_connections()
    give_up_at = time.monotonic() + settings.WATTWISE_DB_RETRY_S
    wait_s = FIRST_WAIT_S
    while True:
        try:
            group.run(memo)
            break
        except UNREACHABLE as exc:
            if time.monotonic() + wait_s > give_up_at:
                return [outcome.as_dict() if outcome is not None else _keep(TASK_INGEST_BATCH, envelope, exc)
                        for envelope, outcome in zip(envelopes, group.outcomes, strict=True)]
            log.warning("%d batches: database unreachable (%s); trying again in %.1f s", len(group.undecided()),
                        _one_line(exc), wait_s)
            _close_connections()
            if memo is not None:
                memo.forget()
            if _stopped_waiting(wait_s, stop):
                return [None if outcome is None else outcome.as_dict() for outcome in group.outcomes]
            wait_s = min(wait_s * 2, LONGEST_WAIT_S)
        except Exception:  # a bug on one message: the rest are delivered one by one, that one kept
            log.exception("%d batches could not be stored together; delivering them one by one", len(envelopes))
            _close_connections()
            if memo is not None:
                memo.forget()
            break
    return [outcome.as_dict() if outcome is not None else _deliver_or_give_back(envelope, memo, stop)
            for envelope, outcome in zip(envelopes, group.outcomes, strict=True)]


def _deliver_or_give_back(envelope: Any, memo: IngestMemo | None, stop: Callable[[], bool]) -> dict[str, Any] | None:
    try:
        return deliver(TASK_INGEST_BATCH, envelope, memo, stop)
    except Reject:
        if stop():
            return None  # back to the queue: the consumer is stopping
        raise


def _stopped_waiting(wait_s: float, stop: Callable[[], bool]) -> bool:
    """Wait ``wait_s`` for the database, or less once ``stop()`` holds; whether it does."""
    pause(wait_s, stop)
    return stop()


def _keep(task: str, envelope: Any, error: BaseException) -> dict[str, Any]:
    _close_connections()
    try:
        letter = DeadLetter.objects.create(
            task=task,
            node_name=_storable(str(envelope.get("node", "")))[:200] if isinstance(envelope, dict) else "",
            envelope_json=json.dumps(envelope, ensure_ascii=True),
            error=_storable(f"{type(error).__name__}: {error}"),
        )
    except Exception as exc:
        log.error("%s: could not keep the message as a dead letter (%s); it goes back on the queue", task,
                  _one_line(exc))
        _close_connections()
        raise Reject(f"not stored, not kept: {_one_line(exc)}", requeue=True) from exc
    log.error("%s: kept as dead letter %d (%s); replay it with `manage.py replay_dead_letters`", task, letter.pk,
              _one_line(error))
    return {"status": DEAD_LETTER, "detail": letter.error, "dead_letter_id": letter.pk}


def replay(letter: DeadLetter) -> str:
    """Hand a dead letter to its receiver again, now; record and return what became of it."""
    try:
        outcome = RECEIVERS[letter.task](json.loads(letter.envelope_json), None)
        said = f"{outcome.status.value}: {outcome.detail}" if outcome.detail else outcome.status.value
        letter.replayed_at = timezone.now()
    except Exception as exc:  # recorded on the letter, which stays to be replayed
        if isinstance(exc, UNREACHABLE):
            _close_connections()
        said = _storable(f"failed again: {type(exc).__name__}: {exc}")
    letter.replay_outcome = said
    letter.save(update_fields=["replayed_at", "replay_outcome"])
    return said


def _close_failed_connections() -> None:
    """Close this thread's connections that failed in an earlier task (or outlived CONN_MAX_AGE), not reused."""
    for connection in _outside_transactions():
        try:
            connection.close_if_unusable_or_obsolete()
        except DatabaseError:
            connection.close()


def _close_connections() -> None:
    """Close this thread's database connections, dead or alive: the next query opens a fresh one."""
    for connection in _outside_transactions():
        with contextlib.suppress(DatabaseError):  # it was dead already
            connection.close()


def _outside_transactions() -> list[BaseDatabaseWrapper]:
    """This thread's open connections, less any inside a transaction (a caller's, e.g. a test's), which
    only that caller may end."""
    return [c for c in connections.all(initialized_only=True) if not c.in_atomic_block]


def _storable(text: str) -> str:
    """Text PostgreSQL takes: no NUL, no lone surrogate (both shown escaped)."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]

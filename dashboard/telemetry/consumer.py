"""The coalescing consumer of the telemetry queue (``manage.py consume_telemetry``): every message waiting,
up to a bound, becomes one unit of storage work.

A Celery worker takes one message at a time and stores each batch in its own transaction; at 5 s windows
most of what the server spends is that fixed cost per message (the worker's bookkeeping per task, the
receipt, the transaction), not the samples. This consumer reads the same queue, the same Celery task
messages (agents publishing to the broker, or the web processes queueing what they accepted). On Redis
(``consume_redis``) it takes every message waiting, at most ``max_messages`` or ``max_bytes`` of them, in one
round trip (``dashboard.telemetry.redis_queue``, which keeps kombu's bookkeeping of unacknowledged
messages) and looks again every ``POLL_S`` while the queue is empty: a window waits at most that long, so
the live pages still update every window. On another broker (``consume``) it goes through kombu's
transport: it waits for the first message, then takes what else is already there (waiting at most
``collect_s`` for each), up to the same bounds. It hands:

* the batches (``wattwise.ingest_batch``) to
  ``delivery.deliver_group``: one transaction, one receipt statement, each batch its own outcome, a bad
  one refused alone (``dashboard.telemetry.coalesce``);
* runs opened first and runs closed, stage profiles after, to ``delivery.deliver`` one by one.

Every message is acknowledged only after what it carried was committed (stored, refused with a recorded
reason or kept as a dead letter): until then the transport keeps it as unacknowledged, and a consumer
killed meanwhile leaves it to be delivered again after the visibility timeout, when the receipts make the
copy a duplicate. A message whose dead letter could not be written is put back on the queue, as is every
message not yet decided when the consumer is told to stop (SIGTERM) while the database is unreachable: it
stops waiting for the database rather than be killed waiting.
A message that is not a task this app knows is recorded as a rejection and acknowledged (as a worker
drops an unregistered task).

The command (``consume_through_outages``) rides out a broker outage (``dashboard.telemetry.broker_link``): a
broker call that fails as a lost connection does ends the round, and it connects again until the broker is
back. Messages taken then and not yet acknowledged are the broker's to hand out again: on Redis kombu's
``restore_visible`` after the visibility timeout, on RabbitMQ at once; a batch already committed comes back a
duplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery
from celery.exceptions import Reject
from django.conf import settings
from kombu import Connection, Consumer, Message
from kombu.utils.url import maybe_sanitize_url

from dashboard.telemetry import delivery
from dashboard.telemetry.admission import record_rejection
from dashboard.telemetry.broker_link import BrokerUnreachable, Link, broker_call, keep_consuming
from dashboard.telemetry.ingest_memo import IngestMemo
from dashboard.telemetry.models import Rejection
from dashboard.telemetry.redis_queue import RedisQueue
from dashboard.telemetry.redis_queue import Taken as TakenRaw
from wattwise_agent.wire import TASK_INGEST_BATCH, TASK_OPEN_RUN, TELEMETRY_QUEUE

log = logging.getLogger(__name__)

MAX_MESSAGES = 200  # at 5 s windows of 8 GPUs: 80,000 samples, one transaction
MAX_BYTES = 32 * 1024 * 1024
COLLECT_S = 0.005  # how long to wait for one more message once one is there
IDLE_S = 1.0  # how long one wait for the first message lasts (the stop flag is checked between)
POLL_S = 0.1  # Redis: how often an empty queue is looked at (the most a window waits before it is stored)
# Redis: a broker that stops answering (a network cut, not only a refusal) is an outage too, given up on after a
# socket timeout (a call that connects first may wait two), inside compose's 30 s stop grace period. Seconds;
# for the consumer's own client a broker URL's options win, kombu's channel takes these.
REDIS_TIMEOUTS_S = {"socket_connect_timeout": 5.0, "socket_timeout": 5.0}


@dataclass
class Taken:
    """The messages taken together, and what they carry."""

    messages: list[Message] = field(default_factory=list)
    size_bytes: int = 0

    def add(self, message: Message) -> None:
        self.messages.append(message)
        self.size_bytes += len(message.body or b"")


def task_of(message: Message) -> tuple[str, Any]:
    """(task name, its first argument) of a Celery task message, protocol 2 or 1; ValueError if it is none."""
    return task_in(message.headers, message.decode())


def task_in(headers: dict[str, Any] | None, body: Any) -> tuple[str, Any]:
    """(task name, its first argument) from a Celery task message's headers and decoded body."""
    name = (headers or {}).get("task")
    if name is not None and isinstance(body, (list, tuple)) and body and isinstance(body[0], (list, tuple)):
        args = body[0]
    elif isinstance(body, dict) and isinstance(body.get("task"), str):  # protocol 1
        name, args = body["task"], body.get("args") or []
    else:
        raise ValueError("not a Celery task message")
    if not isinstance(name, str) or len(args) != 1:
        raise ValueError(f"task {name!r} with {len(args)} arguments")
    return name, args[0]


@dataclass(frozen=True)
class Unreadable:
    """A message that is not a task this app can read: recorded as a rejection, never stored."""

    reason: str
    code: Rejection.Code = Rejection.Code.MALFORMED


def handle(taken: Taken, memo: IngestMemo | None, totals: dict[str, int],
           broker_errors: tuple[type[BaseException], ...] = (), stop: Callable[[], bool] = lambda: False) -> None:
    """Store, refuse or keep what the messages carry, count it in ``totals``, then acknowledge each message (or
    requeue it); ``broker_errors`` raised acknowledging are ``BrokerUnreachable``."""
    tasks: list[tuple[str, Any] | Unreadable] = []
    for message in taken.messages:
        try:
            tasks.append(task_of(message))
        except Exception as exc:  # whatever it is, it is recorded, never stored
            tasks.append(Unreadable(f"unreadable task message on {TELEMETRY_QUEUE!r}: {exc}"))
    counts, requeue = store(tasks, memo, stop)
    _add(totals, counts)  # stored, whether or not the acknowledgements reach the broker
    with broker_call(broker_errors):
        for i, message in enumerate(taken.messages):
            if i in requeue:
                message.requeue()
            else:
                message.ack()


def store(
    tasks: list[tuple[str, Any] | Unreadable], memo: IngestMemo | None, stop: Callable[[], bool] = lambda: False,
) -> tuple[dict[str, int], set[int]]:
    """Store, refuse or keep what each message carries (its task and argument, or why it could not be read):
    counts by status, and the messages to put back on the queue (their dead letters could not be written, or
    ``stop()`` came while the database was unreachable)."""
    batches: list[Any] = []
    owners: list[int] = []  # the message each batch envelope came in
    opening: list[tuple[int, str, Any]] = []
    others: list[tuple[int, str, Any]] = []
    requeue: set[int] = set()
    counts: dict[str, int] = {}
    for i, task in enumerate(tasks):
        if isinstance(task, Unreadable):
            _refuse_unreadable(task.reason, task.code)
            continue
        name, argument = task
        if name == TASK_INGEST_BATCH:
            batches.append(argument)
            owners.append(i)
        elif name == TASK_OPEN_RUN:
            opening.append((i, name, argument))
        elif name in delivery.RECEIVERS:
            others.append((i, name, argument))
        else:
            _refuse_unreadable(f"task {name!r} on {TELEMETRY_QUEUE!r} is not one this app receives")
    for i, name, argument in opening:
        _count(counts, _deliver_one(name, argument, memo, stop), i, requeue)
    if batches and stop():  # stopping: what is not stored yet goes back without a try that could hang
        requeue.update(owners)
    elif batches:
        try:
            for owner, outcome in zip(owners, delivery.deliver_group(batches, memo, stop), strict=True):
                _count(counts, outcome, owner, requeue)
        except Reject:
            requeue.update(owners)
    for i, name, argument in others:
        _count(counts, None if stop() else _deliver_one(name, argument, memo, stop), i, requeue)
    return counts, requeue


def _deliver_one(name: str, argument: Any, memo: IngestMemo | None, stop: Callable[[], bool]) -> dict[str, Any] | None:
    try:
        return delivery.deliver(name, argument, memo, stop)
    except Reject:
        return None


def _count(counts: dict[str, int], outcome: dict[str, Any] | None, i: int, requeue: set[int]) -> None:
    if outcome is None:
        requeue.add(i)
    else:
        counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1


def _refuse_unreadable(reason: str, code: Rejection.Code = Rejection.Code.MALFORMED) -> None:
    log.error("%s", reason)
    record_rejection(Rejection.Kind.REQUEST, None, reason, code)


def consume(
    connection: Connection, *, memo: IngestMemo | None = None, max_messages: int = MAX_MESSAGES,
    max_bytes: int = MAX_BYTES, collect_s: float = COLLECT_S, idle_s: float = IDLE_S,
    stop: Callable[[], bool] = lambda: False, until_idle: bool = False, totals: dict[str, int] | None = None,
    alive: Callable[[], None] = lambda: None,
) -> dict[str, int]:
    """Consume the telemetry queue on ``connection`` until ``stop()`` (checked at least every ``idle_s``), or,
    with ``until_idle``, until no message came for ``idle_s``; counts by status, added to ``totals`` as they
    come (a caller keeps them through an outage), ``alive()`` after every call to the broker that went through.
    A connection lost raises ``BrokerUnreachable``."""
    memo = IngestMemo() if memo is None else memo
    totals = {} if totals is None else totals
    errors = connection.connection_errors
    taken = Taken()  # the taken of the round in progress
    with broker_call(errors):
        # prefetch: the transport hands out at most that many unacknowledged messages, so a group is bounded.
        # on_message, not callbacks: kombu hands the message over undecoded, so one that cannot be decoded (another
        # content type, a broken body) is recorded by ``handle`` and acknowledged instead of raising out of
        # drain_events, where it would stop the consumer and come back to stop the next one.
        messages = Consumer(connection, [_telemetry_queue()], on_message=lambda message: taken.add(message),
                            accept=["json"], prefetch_count=max_messages)
        messages.consume()
    alive()
    while not stop():
        with broker_call(errors):
            came = _drain(connection, idle_s)
        alive()
        if not came:
            if until_idle:
                break
            continue
        with broker_call(errors):
            while len(taken.messages) < max_messages and taken.size_bytes < max_bytes and _drain(connection, collect_s):
                pass
        handle(taken, memo, totals, errors, stop)
        taken = Taken()
    with broker_call(errors):  # only on a stop: a lost connection took its consumer with it
        messages.cancel()
    return totals


def _drain(connection: Connection, timeout_s: float) -> bool:
    """One message (or none within ``timeout_s``) from the broker; whether one came."""
    try:
        connection.drain_events(timeout=timeout_s)
    except TimeoutError:
        return False
    return True


def _telemetry_queue() -> Any:
    from celery import current_app

    return current_app.amqp.queues[TELEMETRY_QUEUE]


def _add(totals: dict[str, int], counts: dict[str, int]) -> None:
    for status, count in counts.items():
        totals[status] = totals.get(status, 0) + count


def consume_redis(
    queue: RedisQueue, *, memo: IngestMemo | None = None, max_messages: int = MAX_MESSAGES,
    max_bytes: int = MAX_BYTES, idle_s: float = POLL_S, stop: Callable[[], bool] = lambda: False,
    until_idle: bool = False, restore: Callable[[], object] | None = None, restore_every_s: float = 10.0,
    totals: dict[str, int] | None = None, alive: Callable[[], None] = lambda: None,
) -> dict[str, int]:
    """``consume`` on Redis, many messages a round trip (``dashboard.telemetry.redis_queue``): the queue is
    looked at every ``idle_s`` while it is empty (``until_idle``: stop then); ``restore`` (kombu's restore of
    messages a dead consumer left unacknowledged) runs at most every ``restore_every_s``. Counts by status,
    added to ``totals`` as they come, ``alive()`` after every take that went through; a connection lost raises
    ``BrokerUnreachable``."""
    memo = IngestMemo() if memo is None else memo
    totals = {} if totals is None else totals
    errors = queue.connection_errors
    restored_at = float("-inf")
    while not stop():
        with broker_call(errors):
            taken = queue.take(max_messages, max_bytes)
        alive()
        if not taken:
            if until_idle:
                break
            if restore is not None and time.monotonic() - restored_at >= restore_every_s:
                with broker_call(errors):
                    restore()
                restored_at = time.monotonic()
            time.sleep(idle_s)
            continue
        counts, requeue = store(_tasks_in(queue, taken), memo, stop)
        _add(totals, counts)
        # Lost here, after the commit: the messages stay unacknowledged, come back after the visibility timeout
        # (restore) and are found duplicates by their receipts.
        with broker_call(errors):
            if requeue:
                queue.requeue([t for i, t in enumerate(taken) if i in requeue])
            queue.ack([t for i, t in enumerate(taken) if i not in requeue])
    return totals


def _tasks_in(queue: RedisQueue, taken: list[TakenRaw]) -> list[tuple[str, Any] | Unreadable]:
    tasks: list[tuple[str, Any] | Unreadable] = []
    for t in taken:
        if t.too_large_bytes is not None:
            tasks.append(Unreadable(
                f"broker message of {t.too_large_bytes} bytes on queue {queue.queue!r} refused unread: above "
                f"WATTWISE_BROKER_MAX_MESSAGE_BYTES ({queue.max_message_bytes})", Rejection.Code.TOO_LARGE))
            continue
        try:
            tasks.append(task_in(*t.task()))
        except Exception as exc:  # whatever it is, it is recorded, never stored
            tasks.append(Unreadable(f"unreadable task message on {queue.queue!r}: {exc}"))
    return tasks


def consume_through_outages(
    app: Celery, *, ready_file: Path | None, memo: IngestMemo, stop: Callable[[], bool], poll_s: float = POLL_S,
    max_messages: int = MAX_MESSAGES, max_bytes: int = MAX_BYTES,
) -> dict[str, int]:
    """What ``manage.py consume_telemetry`` does: ``consume_redis`` (on Redis) or ``consume`` on ``app``'s broker
    until ``stop()``, connecting again after every outage (``dashboard.telemetry.broker_link``: ``ready_file``
    is there while connected); counts by status."""
    totals: dict[str, int] = {}
    options: dict[str, Any] = {"memo": memo, "stop": stop, "max_messages": max_messages, "max_bytes": max_bytes,
                               "totals": totals}
    with app.connection_for_read() as connection:
        link = Link(maybe_sanitize_url(app.conf.broker_url), ready_file)
        options["alive"] = link.up
        if connection.transport.driver_type == "redis":
            # read when its channel is made, on connecting: restoring gives up on a broker that stopped answering too
            connection.transport_options = {**(connection.transport_options or {}), **REDIS_TIMEOUTS_S}
            consume_connected = _on_redis(app, connection, poll_s, options)
        else:
            def consume_connected() -> None:
                consume(connection, **options)
        try:
            keep_consuming(_session(connection, consume_connected), link, stop=stop)
        finally:
            link.close()  # stopped, or ended by what the database raised: not ready any more
    return totals


def _on_redis(app: Celery, connection: Connection, poll_s: float, options: dict[str, Any]) -> Callable[[], None]:
    import redis

    queue = RedisQueue(redis.Redis.from_url(app.conf.broker_url, **REDIS_TIMEOUTS_S), TELEMETRY_QUEUE,
                       max_message_bytes=settings.WATTWISE_BROKER_MAX_MESSAGE_BYTES)

    def consume_connected() -> None:
        with broker_call(connection.connection_errors):
            # kombu's, for restoring what a dead consumer left (a Redis channel's: typed as any channel)
            qos = connection.default_channel.qos  # type: ignore[attr-defined]
        consume_redis(queue, idle_s=poll_s, restore=lambda: qos.restore_visible(num=1000, interval=1), **options)

    return consume_connected


def _session(connection: Connection, consume_connected: Callable[[], None]) -> Callable[[], None]:
    """Connect (one try), consume; a connection lost is dropped before ``BrokerUnreachable`` goes on."""

    def session() -> None:
        try:
            with broker_call(connection.connection_errors):
                connection.ensure_connection(max_retries=0, reraise_as_library_errors=False)
            consume_connected()
        except BrokerUnreachable:
            _forget(connection)
            raise

    return session


def _forget(connection: Connection) -> None:
    """Let a lost connection go without talking to its broker (kombu's ``collect``): the next try makes a new one."""
    try:
        connection.collect()
    except Exception:  # its loss is logged already (broker_link); closing a dead connection can fail in many ways
        log.debug("closing the lost broker connection failed", exc_info=True)

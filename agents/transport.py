"""Transports: how envelopes leave the agent.

The agent imports no Celery, yet the app consumes Celery tasks. ``CeleryTransport`` therefore publishes
with kombu (Celery's own messaging library) exactly the message that ``app.send_task(name,
args=[envelope], ignore_result=True)`` would put on the broker: Celery message protocol 2, JSON, one
task per envelope, on the ``telemetry`` queue, task name by envelope kind (``agents.wire``).

Any transport is an object with ``send(envelope) -> None`` that raises ``TransportUnavailable`` when the
envelope cannot be delivered now; the agent then spools it and retries later. The app plugs its own
(``CallableTransport`` around its ingest function) to seed a demo through the same path in-process.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from agents import __version__, wire

log = logging.getLogger(__name__)

Envelope = dict[str, Any]


class TransportUnavailable(ConnectionError):
    """The envelope could not be delivered now (broker down or unreachable); try again later."""


class Transport(Protocol):
    def send(self, envelope: Envelope) -> None: ...


class MemoryTransport:
    """Keeps envelopes in a list; ``available = False`` simulates a broker outage."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.available = True

    def send(self, envelope: Envelope) -> None:
        if not self.available:
            raise TransportUnavailable("memory transport marked unavailable")
        self.envelopes.append(envelope)


class CallableTransport:
    """Hands each envelope to a function, e.g. the app's ingest entry point, in-process."""

    def __init__(self, deliver: Callable[[Envelope], object]) -> None:
        self._deliver = deliver

    def send(self, envelope: Envelope) -> None:
        self._deliver(envelope)


def redact_url(url: str) -> str:
    """A broker URL safe to print: any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def celery_task_message(
    envelope: Envelope, *, task_id: str | None = None, origin: str | None = None
) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """The (body, headers, properties) of the Celery protocol-2 task message carrying ``envelope``."""
    kind = envelope.get("kind")
    if kind not in wire.TASKS_BY_KIND:
        raise wire.WireError(f"unknown message kind {kind!r}")
    task_id = task_id or str(uuid.uuid4())
    name = wire.TASKS_BY_KIND[kind]
    body_chars = len(envelope.get("body", ""))
    headers: dict[str, Any] = {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        # Shown by monitoring tools; the body is large and not for logs, so describe it instead.
        "argsrepr": f"[<{kind} envelope from {envelope.get('node')!r}, {body_chars} chars>]",
        "kwargsrepr": "{}",
        "origin": origin or f"wattwise-agent/{__version__}@{socket.gethostname()}",
        # Ingest results are written to the database; storing task results too would only cost.
        "ignore_result": True,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    body = [[envelope], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    properties = {"correlation_id": task_id, "reply_to": ""}
    return body, headers, properties


class CeleryTransport:
    """Publishes each envelope as a Celery task on the broker, with kombu and short timeouts."""

    def __init__(
        self,
        broker_url: str,
        *,
        queue: str = wire.TELEMETRY_QUEUE,
        connect_timeout_s: float = 1.5,
        socket_timeout_s: float = 5.0,
    ) -> None:
        self.broker_url = broker_url
        self.queue_name = queue
        self._connect_timeout_s = connect_timeout_s
        self._socket_timeout_s = socket_timeout_s
        self._connection: Any = None
        self._producer: Any = None
        self._queue: Any = None

    def __repr__(self) -> str:
        return f"CeleryTransport({redact_url(self.broker_url)!r}, queue={self.queue_name!r})"

    def _connect(self) -> Any:
        if self._producer is None:
            from kombu import Connection, Exchange, Queue

            self._connection = Connection(
                self.broker_url,
                connect_timeout=self._connect_timeout_s,
                transport_options={
                    "socket_connect_timeout": self._connect_timeout_s,
                    "socket_timeout": self._socket_timeout_s,
                    "max_retries": 0,
                },
            )
            # The queue as a Celery worker declares it for ``-Q telemetry`` (direct exchange, same name).
            self._queue = Queue(self.queue_name, Exchange(self.queue_name, type="direct"), routing_key=self.queue_name)
            self._producer = self._connection.Producer(serializer="json")
        return self._producer

    def send(self, envelope: Envelope) -> None:
        body, headers, properties = celery_task_message(envelope)
        try:
            producer = self._connect()
            errors = self._errors()
            try:
                producer.publish(
                    body,
                    exchange="",
                    routing_key=self.queue_name,
                    declare=[self._queue],
                    serializer="json",
                    headers=headers,
                    delivery_mode=2,
                    retry=False,
                    **properties,
                )
            except errors as exc:
                self.close()
                raise TransportUnavailable(f"broker {redact_url(self.broker_url)} unreachable: {exc}") from exc
        except TransportUnavailable:
            raise
        except (OSError, ConnectionError) as exc:
            self.close()
            raise TransportUnavailable(f"broker {redact_url(self.broker_url)} unreachable: {exc}") from exc

    def _errors(self) -> tuple[type[BaseException], ...]:
        from kombu.exceptions import OperationalError

        connection = self._connection
        return (OperationalError, OSError, *connection.connection_errors, *connection.channel_errors)

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception as exc:  # a dead connection may fail to close; it is dropped either way
                log.debug("closing broker connection: %s", exc)
        self._connection = self._producer = None

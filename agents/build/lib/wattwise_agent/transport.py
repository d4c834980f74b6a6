"""Transports: how envelopes leave the agent.

``HttpTransport`` POSTs envelopes to the app's ``/api/ingest`` (the standard library's ``http.client``,
one persistent connection, gzip bodies, TLS with the system's CA certificates or ``WATTWISE_CA_BUNDLE``),
so a node needs only the app's URL and its token. ``CeleryTransport`` publishes to the broker directly,
for trusted networks: the agent imports no Celery, yet the app consumes Celery tasks, so it publishes with
kombu (Celery's own messaging library) exactly the message that ``app.send_task(name, args=[envelope],
ignore_result=True)`` would put on the broker: Celery message protocol 2, JSON, one task per envelope, on
the ``telemetry`` queue, task name by envelope kind (``wattwise_agent.wire``). ``transport_for`` picks one.

Any transport is an object with ``send(envelope) -> None`` (and, optionally, ``send_many(envelopes)``
that sends several in one request). It raises ``TransportUnavailable`` when the envelope cannot be
delivered now (the agent spools it and retries later, after the server's ``Retry-After`` when it gave
one), ``TokenRejected`` when the app refuses the node's token (nothing will be accepted until the
token is fixed), and ``EnvelopeRefused`` when the app can never accept that envelope (it is set aside
with the reason). The app plugs its own (``CallableTransport`` around its ingest function) to seed a demo
through the same path in-process.
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import socket
import ssl
import uuid
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from wattwise_agent import __version__, wire

log = logging.getLogger(__name__)

Envelope = dict[str, Any]


class TransportUnavailable(ConnectionError):
    """The envelope could not be delivered now (app or broker down, unreachable or busy); try again later.

    ``retry_after_s``: how long the app asked the agent to wait (its ``Retry-After``), when it said.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TokenRejected(Exception):
    """The app refused the node's token (HTTP 401): nothing will be accepted until the token is fixed."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"token rejected (401): {reason}")
        self.reason = reason


class EnvelopeRefused(Exception):
    """The app can never accept this request's envelope (HTTP 400, 413 or 415), for ``reason``.

    For several envelopes in one request, ``index`` names the one refused (when the app said).
    """

    def __init__(self, status: int, reason: str, *, index: int | None = None) -> None:
        super().__init__(f"refused ({status}): {reason}")
        self.status = status
        self.reason = reason
        self.index = index


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
        self._exchange = ""

    def __repr__(self) -> str:
        return f"CeleryTransport({redact_url(self.broker_url)!r}, queue={self.queue_name!r})"

    def _connect(self) -> Any:
        if self._producer is None:
            from kombu import Connection

            self._connection = Connection(
                self.broker_url,
                connect_timeout=self._connect_timeout_s,
                transport_options={
                    "socket_connect_timeout": self._connect_timeout_s,
                    "socket_timeout": self._socket_timeout_s,
                    "max_retries": 0,
                    # AMQP: wait for the broker's ack, so a refused publish (no such exchange, no
                    # permission) raises here instead of being dropped silently (others ignore it).
                    "confirm_publish": True,
                },
            )
            # Nothing is declared: the app's workers declare the queue (a direct exchange and routing key
            # of its name) when they start, so a node's broker credentials need no right to create,
            # bind or read anything (docs/agent.md, "The broker transport on a trusted network").
            # Redis: LPUSH onto the queue's list (the anonymous exchange), which needs only that key.
            # AMQP: publish to the queue's own exchange, which routes only to it; the default exchange
            # would reach any queue.
            amqp = self._connection.transport.driver_type == "amqp"
            self._exchange = self.queue_name if amqp else ""
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
                    exchange=self._exchange,
                    routing_key=self.queue_name,
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


INGEST_PATH = "/api/ingest"
# What one request carries at most when several envelopes wait (a drained spool): well under the app's
# request limit, and small enough that a refused list costs little to resend one by one.
MAX_REQUEST_ENVELOPES = 64
MAX_REQUEST_BYTES = 2 * 1024 * 1024
_MAX_RETRY_AFTER_S = 300.0  # a server asking for longer is capped: the agent tries again after this
_REFUSED = (400, 413, 415)
_BUSY = (429, 503)


class HttpTransport:
    """POSTs envelopes to the app's ``/api/ingest`` over one persistent HTTP(S) connection.

    ``base_url`` is the app's URL (``https://wattwise.example.org``, or with a path prefix); ``ca_bundle``
    a PEM file of certificate authorities to trust instead of the system's.
    """

    def __init__(
        self,
        base_url: str,
        *,
        ca_bundle: str | None = None,
        connect_timeout_s: float = 5.0,
        timeout_s: float = 60.0,
        compress_level: int = 1,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http:// or https:// URL: {base_url!r} (e.g. https://wattwise.example.org)")
        if parts.username or parts.password:
            raise ValueError("the app's URL takes no user or password: the node's token signs every message")
        self.base_url = base_url
        self.url = urlunsplit(parts._replace(path=parts.path.rstrip("/") + INGEST_PATH, query="", fragment=""))
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/") + INGEST_PATH
        self._context: ssl.SSLContext | None = None
        if self._https:
            try:
                self._context = ssl.create_default_context(cafile=ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot use the CA bundle {ca_bundle!r} (WATTWISE_CA_BUNDLE): {exc}") from None
        self._connect_timeout_s = connect_timeout_s
        self._timeout_s = timeout_s
        self._compress_level = compress_level
        self._connection: http.client.HTTPConnection | None = None
        self._headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Accept": "application/json",
            "User-Agent": f"wattwise-agent/{__version__}",
        }

    def __repr__(self) -> str:
        return f"HttpTransport({self.url!r})"

    def send(self, envelope: Envelope) -> None:
        self._post(json.dumps(envelope, separators=(",", ":")).encode())

    def send_many(self, envelopes: list[Envelope]) -> None:
        """Send several envelopes in one request: all are accepted, or none (``EnvelopeRefused.index``)."""
        if len(envelopes) == 1:
            self.send(envelopes[0])
        elif envelopes:
            self._post(json.dumps(envelopes, separators=(",", ":")).encode())

    def _post(self, data: bytes) -> None:
        body = gzip.compress(data, compresslevel=self._compress_level, mtime=0)
        status, answer, retry_after = self._exchange(body)
        reason = _reason(status, answer)
        if status == 202:
            return
        if status == 401:
            raise TokenRejected(reason)
        if status in _REFUSED:
            index = answer.get("index") if isinstance(answer, dict) else None
            raise EnvelopeRefused(status, reason, index=index if isinstance(index, int) else None)
        if status in _BUSY:
            raise TransportUnavailable(f"{self.url} answered {status}: {reason}", retry_after_s=retry_after)
        # Anything else (a proxy's 502, a wrong path's 404): keep the envelopes and try again later.
        raise TransportUnavailable(f"{self.url} answered {status}: {reason}", retry_after_s=retry_after)

    def _exchange(self, body: bytes) -> tuple[int, Any, float | None]:
        """POST once; a kept-alive connection the server closed meanwhile is reopened and tried once more."""
        for attempt in (1, 2):
            reused = self._connection is not None
            try:
                connection = self._connect()
                connection.request("POST", self._path, body=body, headers=self._headers)
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if reused and attempt == 1:
                    continue
                raise TransportUnavailable(f"{self.url} unreachable: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise TransportUnavailable(f"{self.url} unreachable: {exc}") from exc
            if response.will_close:
                self.close()
            return response.status, _parsed(data), _retry_after_s(response.getheader("Retry-After"))
        raise AssertionError("unreachable")

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            connection: http.client.HTTPConnection
            if self._https:
                connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._connect_timeout_s, context=self._context
                )
            else:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=self._connect_timeout_s)
            connection.connect()
            if connection.sock is not None:
                connection.sock.settimeout(self._timeout_s)  # connected: now wait as long as the app may take
            self._connection = connection
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _parsed(data: bytes) -> Any:
    """The answer's JSON; None for anything else (a proxy's HTML error page)."""
    try:
        return json.loads(data)
    except ValueError:
        return None


def _reason(status: int, answer: Any) -> str:
    """The app's ``detail``, for the agent's log and the refused file; else the status's name."""
    if isinstance(answer, dict) and isinstance(answer.get("detail"), str):
        return str(answer["detail"])
    return http.client.responses.get(status, "no reason given")


def _retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the delay form; a date is read as "soon"), capped."""
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER_S)
    except ValueError:
        return None


def transport_for(
    url: str | None, broker_url: str | None, *, ca_bundle: str | None = None, connect_timeout_s: float | None = None
) -> HttpTransport | CeleryTransport:
    """The transport the configuration asks for: the app's URL (HTTP) or a broker URL, never both.

    Raises ValueError with what to set when neither or both are given.
    """
    if url and broker_url:
        raise ValueError(
            f"both the app's URL ({url}) and a broker ({redact_url(broker_url)}) are set: choose one. "
            "WATTWISE_URL/--url sends to the app over HTTP(S); WATTWISE_BROKER_URL/--broker-url publishes to "
            "the broker directly (trusted networks only)"
        )
    if url:
        return HttpTransport(url, ca_bundle=ca_bundle, connect_timeout_s=connect_timeout_s or 5.0)
    if broker_url:
        return CeleryTransport(broker_url, connect_timeout_s=connect_timeout_s or 1.5)
    raise ValueError(
        "nowhere to send: set WATTWISE_URL to the app's URL (e.g. https://wattwise.example.org) or pass --url; "
        "on a trusted network WATTWISE_BROKER_URL/--broker-url publishes to the broker instead"
    )

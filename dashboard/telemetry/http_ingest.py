"""HTTP ingest: agents POST signed envelopes to ``/api/ingest``; each accepted one becomes a Celery task.

The view is thin; the plain functions below do the work, in this order, and the first refusal answers:

1. ``Content-Type: application/json`` (else 415) and ``Content-Encoding`` absent, ``identity`` or
   ``gzip`` (else 415); a declared ``Content-Length`` above ``MAX_REQUEST_BYTES`` is refused (413)
   before the body is read.
2. Backpressure: the telemetry queue's depth, measured at most every ``DEPTH_REFRESH_S`` per process
   (``QueueGauge``), above ``WATTWISE_INGEST_MAX_QUEUE`` answers 429 and an unreachable broker 503,
   both with ``Retry-After``; the agent keeps its envelopes spooled and tries again after that long.
   Neither is recorded as a rejection: nothing is wrong with the message, and writing a row per
   request while the app is overloaded would only add to the load.
3. The body is read (413 beyond the limit, also when it only grows that large once decompressed, so a
   small gzip bomb cannot take the process's memory), parsed as JSON (400) into one envelope or a list
   of them (at most ``MAX_ENVELOPES_PER_REQUEST``).
4. Every envelope is authenticated (``admission.authenticate``: 401 for an unknown or revoked token or a
   bad signature) and its payload validated with the ``wattwise_agent.wire`` models (400).
5. Each is handed to Celery (``wire.TASKS_BY_KIND[kind]``, routed to the ``telemetry`` queue), in order;
   202. With no broker configured (``make run``) the task runs in the request, as every task does.

A request is all or nothing: if any envelope of a list is refused, none is queued, and the answer names
the first refused one (``index``) so the agent can send the others on their own. Every refusal is
recorded in ``Rejection`` with its reason (for a list, one row per refused envelope) and nothing else
is written. What needs the stored data (a replayed sequence number, the window's continuity, the
clock, a profile's CSV) is checked by the worker, as for the broker transport: such a message is
answered 202 here and recorded as a rejection by the task.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from celery import current_app
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router

from dashboard.telemetry import admission
from dashboard.telemetry.ingest_memo import IngestMemo
from dashboard.telemetry.models import Rejection
from wattwise_agent import wire

log = logging.getLogger(__name__)

router = Router(tags=["ingest"])

# The largest request body, compressed or not. One envelope at the wire's body limit (4 MiB of JSON
# text, escaped once more inside the envelope) fits; agents send lists far smaller than this.
MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_ENVELOPES_PER_REQUEST = 500
DEPTH_REFRESH_S = 0.5  # the queue's depth is measured at most this often per process
RETRY_AFTER_BUSY_S = 5  # 429: the workers are behind
RETRY_AFTER_UNAVAILABLE_S = 15  # 503: the broker is unreachable
_READ_CHUNK_BYTES = 256 * 1024
TOO_LARGE = Rejection.Code.TOO_LARGE
# The tokens this process has checked, remembered as a worker remembers them (for ``node_ttl_s``: a revoked
# or rotated token takes effect within seconds); the view uses nothing else of the memo.
_TOKENS = IngestMemo()
_JSON_TYPES = {"application/json"}
_ENCODINGS = {"", "identity", "gzip"}


class BrokerUnreachable(ConnectionError):
    """The broker could not be asked or given anything."""


@dataclass
class Refused(Exception):
    """A request answered with an error status; ``record`` says whether it goes into ``Rejection``."""

    status: int
    reason: str
    code: Rejection.Code = Rejection.Code.MALFORMED
    retry_after_s: int | None = None
    index: int | None = None
    record: bool = True

    def __str__(self) -> str:
        return self.reason


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> HttpResponse:
        response = JsonResponse(self.body, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


@router.post("/ingest", auth=None, include_in_schema=False, url_name="ingest")
def ingest_envelopes(request: HttpRequest) -> HttpResponse:
    """Agents' messages (docs/api.md, "Ingest"): authenticated by each envelope's HMAC, not by a user."""
    return receive(request).response()


# --- the steps ------------------------------------------------------------------------------------


def receive(request: HttpRequest) -> Answer:
    """Check, authenticate, validate and queue the envelopes of one request; say what became of them."""
    try:
        check_headers(request)
        check_backlog()
        envelopes = parse_envelopes(read_body(request))
        accepted = authenticate_all(envelopes)
        queue_all(accepted)
    except Refused as refused:
        if refused.record:
            record(refused)
        return refusal_answer(refused)
    return Answer(202, {"queued": len(accepted)})


def check_headers(request: HttpRequest) -> None:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise Refused(415, f"unsupported content type {content_type or '(none)'!r}: send application/json")
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in _ENCODINGS:
        raise Refused(415, f"unsupported content encoding {encoding!r}: send gzip or no encoding")
    length = request.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        raise Refused(413, f"request too large: {int(length)} bytes, limit {MAX_REQUEST_BYTES}", TOO_LARGE)


def read_body(request: HttpRequest) -> bytes:
    """The request's body, decompressed; 413 beyond ``MAX_REQUEST_BYTES`` either way."""
    chunks, size = [], 0
    while size <= MAX_REQUEST_BYTES:
        chunk = request.read(min(_READ_CHUNK_BYTES, MAX_REQUEST_BYTES + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > MAX_REQUEST_BYTES:
        raise Refused(413, f"request too large: more than {MAX_REQUEST_BYTES} bytes", TOO_LARGE)
    data = b"".join(chunks)
    if request.headers.get("Content-Encoding", "").strip().lower() == "gzip":
        return gunzip(data, MAX_REQUEST_BYTES)
    return data


def gunzip(data: bytes, limit_bytes: int) -> bytes:
    """Decompress one gzip member, never producing more than ``limit_bytes`` (413 beyond)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit_bytes + 1)
    except zlib.error as exc:
        raise Refused(400, f"body is not valid gzip: {exc}") from None
    if len(out) > limit_bytes:
        raise Refused(413, f"request too large once decompressed: more than {limit_bytes} bytes", TOO_LARGE)
    if not inflater.eof:
        raise Refused(400, "body is not valid gzip: it ends before the compressed data does")
    if inflater.unused_data:
        raise Refused(400, "body is not valid gzip: data follows the compressed stream")
    return out


def parse_envelopes(data: bytes) -> list[Any]:
    """One envelope (a JSON object) or a non-empty list of them."""
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(400, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Refused(400, "body nests deeper than a JSON reader can follow (an envelope nests 2 levels)") from None
    envelopes = parsed if isinstance(parsed, list) else [parsed]
    if not envelopes or not all(isinstance(e, dict) for e in envelopes):
        raise Refused(400, "body must be one envelope (a JSON object) or a non-empty list of envelopes")
    if len(envelopes) > MAX_ENVELOPES_PER_REQUEST:
        raise Refused(413, f"too many envelopes: {len(envelopes)}, limit {MAX_ENVELOPES_PER_REQUEST} per request",
                      TOO_LARGE)
    return envelopes


def authenticate_all(envelopes: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """Authenticate and validate every envelope; refuse the request if any is refused (all or nothing)."""
    accepted: list[tuple[str, dict[str, Any]]] = []
    refusals: list[Refused] = []
    for index, envelope in enumerate(envelopes):
        kind = envelope.get("kind")
        try:
            _, payload, _ = admission.authenticate(envelope, kind if isinstance(kind, str) else "", _TOKENS)
            wire.parse(wire.PAYLOADS[envelope["kind"]], payload)
        except (admission.Rejected, wire.WireError) as exc:
            refused = refusal_for(exc, index, len(envelopes))
            admission.record_rejection(kind if kind in wire.TASKS_BY_KIND else Rejection.Kind.REQUEST, envelope, exc)
            refusals.append(refused)
            continue
        accepted.append((envelope["kind"], envelope))
    if refusals:
        # A token problem first: the agent must stop and be fixed, whatever else is wrong.
        first = min(refusals, key=lambda r: (r.status != 401, r.index))
        first.record = False  # already recorded, with its envelope
        raise first
    return accepted


def refusal_for(exc: Exception, index: int, count: int) -> Refused:
    """401 when ``authenticate`` refused the sender (the agent must stop), else 400 (this message is bad)."""
    where = f"envelope {index}: " if count > 1 else ""
    status = 401 if isinstance(exc, admission.Unauthenticated) else 400
    code = exc.code if isinstance(exc, admission.Rejected) else Rejection.Code.MALFORMED
    return Refused(status, f"{where}{exc}", code, index=index if count > 1 else None)


def queue_all(accepted: list[tuple[str, dict[str, Any]]]) -> None:
    """Hand each envelope to its task on the telemetry queue, in order; 503 when the broker is down."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # celery's proxy
    try:
        with app.producer_or_acquire() as producer:  # one producer (and connection) for the request
            for kind, envelope in accepted:
                # Described, not repeated, in the message headers: Celery would otherwise render it whole.
                described = f"[<{kind} envelope from {envelope.get('node')!r}, {len(envelope.get('body', ''))} chars>]"
                _task(app, wire.TASKS_BY_KIND[kind]).apply_async(
                    args=[envelope], retry=False, producer=producer, argsrepr=described, kwargsrepr="{}"
                )
    except Exception as exc:
        if app.conf.task_always_eager or not _is_broker_error(exc):
            raise  # the task itself failed (eager mode): a server error, as the task would be
        log.warning("could not queue %d envelope(s): %s", len(accepted), exc)
        raise Refused(503, f"broker unreachable: {exc}", retry_after_s=RETRY_AFTER_UNAVAILABLE_S,
                      record=False) from None


def check_backlog() -> None:
    limit = settings.WATTWISE_INGEST_MAX_QUEUE
    try:
        depth = gauge().depth()
    except BrokerUnreachable as exc:
        raise Refused(503, f"broker unreachable: {exc}", retry_after_s=RETRY_AFTER_UNAVAILABLE_S,
                      record=False) from None
    if depth > limit:
        raise Refused(429, f"ingest is behind: {depth} messages queued (limit {limit}); retry later",
                      retry_after_s=RETRY_AFTER_BUSY_S, record=False)


def refusal_answer(refused: Refused) -> Answer:
    body: dict[str, Any] = {"detail": refused.reason}
    if refused.index is not None:
        body["index"] = refused.index
    headers = {}
    if refused.retry_after_s is not None:
        headers["Retry-After"] = str(refused.retry_after_s)
    if refused.status == 401:
        headers["WWW-Authenticate"] = 'Wattwise-HMAC realm="wattwise"'
    return Answer(refused.status, body, headers)


def record(refused: Refused) -> None:
    """A request refused as a whole (its type, size or JSON): no envelope, so no node or key."""
    admission.record_rejection(Rejection.Kind.REQUEST, None, refused.reason, refused.code)


_IMPORTING = threading.Lock()


def _task(app: Any, name: str) -> Any:
    if name not in app.tasks:
        # Web processes import the apps' task modules only when first asked for one (once: threads wait).
        with _IMPORTING:
            if name not in app.tasks:
                app.loader.import_default_modules()
    return app.tasks[name]


def _is_broker_error(exc: Exception) -> bool:
    from kombu.exceptions import OperationalError

    return isinstance(exc, OperationalError | OSError)


# --- the queue's depth ----------------------------------------------------------------------------


class QueueGauge:
    """The telemetry queue's depth, measured at most every ``refresh_s`` (a failure is remembered as long).

    Redis: one pipelined ``LLEN`` of the queue's lists (kombu keeps one per priority). Another broker: a
    passive declare, which answers the message count. No broker (tasks run eagerly): always 0.
    """

    def __init__(self, app: Any, queue: str = wire.TELEMETRY_QUEUE, refresh_s: float | None = None) -> None:
        self.app = app
        self.broker_url = app.conf.broker_url
        self.queue = queue
        self.refresh_s = DEPTH_REFRESH_S if refresh_s is None else refresh_s
        self._lock = threading.Lock()
        self._measured_at = float("-inf")
        self._depth = 0
        self._error: BrokerUnreachable | None = None
        self._redis: Any = None

    def depth(self) -> int:
        with self._lock:
            now = time.monotonic()
            if now - self._measured_at >= self.refresh_s:
                try:
                    self._depth, self._error = self.measure(), None
                except BrokerUnreachable as exc:
                    self._error = exc
                self._measured_at = now
            if self._error is not None:
                raise self._error
            return self._depth

    def measure(self) -> int:
        if self.app.conf.task_always_eager:
            return 0
        url = str(self.broker_url or "")
        try:
            if url.startswith(("redis://", "rediss://")):
                return self._redis_depth(url)
            return self._declared_depth()
        except BrokerUnreachable:
            raise
        except Exception as exc:
            self._redis = None
            raise BrokerUnreachable(str(exc) or type(exc).__name__) from exc

    def _redis_depth(self, url: str) -> int:
        import redis

        if self._redis is None:
            self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        # kombu's Redis transport: the queue's list, and one more per priority step ("<queue>\x06\x16<n>").
        keys = [self.queue, *(f"{self.queue}\x06\x16{step}" for step in (3, 6, 9))]
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.llen(key)
        return int(sum(pipe.execute()))

    def _declared_depth(self) -> int:
        from kombu.exceptions import ChannelError

        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
            try:
                declared = connection.default_channel.queue_declare(queue=self.queue, passive=True)
            except ChannelError:
                return 0  # not declared yet: nothing was ever queued
            return int(declared.message_count)


_gauge: QueueGauge | None = None
_gauge_lock = threading.Lock()


def gauge() -> QueueGauge:
    """This process's gauge of the telemetry queue."""
    global _gauge
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # celery's proxy
    with _gauge_lock:
        if _gauge is None or _gauge.app is not app or _gauge.broker_url != app.conf.broker_url:
            _gauge = QueueGauge(app)
        return _gauge

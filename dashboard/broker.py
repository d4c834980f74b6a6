"""The Redis broker transport the app's Celery uses (``CELERY_BROKER_TRANSPORT``): kombu's, with one change. A
message larger than ``WATTWISE_BROKER_MAX_MESSAGE_BYTES`` is refused before it is read: its bytes are
drained from the socket and dropped as they arrive, so a worker's memory never holds it, and a
``Rejection`` (``too_large``, with its size) tells the admin. HTTP ingest has its own limit
(``http_ingest.MAX_REQUEST_BYTES``); this one covers what is published to the broker directly.

Redis answers a worker's BRPOP with the queue's name and the message as RESP bulk strings, each preceded
by its length (``$<bytes>``); redis-py's parser then reads the whole string into memory. So the check
sits in the parser: ``SizeLimitedParser`` reads the length line and, above the limit, drains the bulk
instead. The channel's connections speak RESP2 with it. That relies on redis-py's pure-Python RESP2 parser (``redis._parsers.resp2._RESP2Parser``: its
``_read_response`` and its ``SocketBuffer``), private API; pyproject.toml pins ``redis>=5,<9`` and
tests/dashboard/test_broker_message_size.py fails if a release changes what this depends on. The
worker always uses this parser, with hiredis installed or not.
"""

from __future__ import annotations

import functools
import io
import logging
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from kombu.transport import redis as kombu_redis
from redis._parsers.resp2 import _RESP2Parser
from redis._parsers.socket import SocketBuffer
from redis.utils import SENTINEL

log = logging.getLogger(__name__)

_DRAIN_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class TooLargeReply:
    """Stands in for a bulk string that was drained unread."""

    size_bytes: int


class SizeLimitedParser(_RESP2Parser):
    """redis-py's RESP2 parser, but a bulk string above the limit is drained and returned as ``TooLargeReply``."""

    def _read_response(self, disable_decoding: bool = False, timeout: Any = SENTINEL) -> Any:
        buffer = self._buffer
        assert buffer is not None
        start = buffer.get_pos()
        size = _bulk_size(buffer.readline(timeout=timeout))
        if size is not None and size > settings.WATTWISE_BROKER_MAX_MESSAGE_BYTES:
            _drain(buffer, size + 2)  # the string and its \r\n
            return TooLargeReply(size)
        buffer.rewind(start)  # anything else: parsed as redis-py does
        return super()._read_response(disable_decoding=disable_decoding, timeout=timeout)


def _bulk_size(line: bytes) -> int | None:
    if line[:1] != b"$":
        return None
    try:
        return int(line[1:])
    except ValueError:
        return None


def _drain(buffer: SocketBuffer, length: int) -> None:
    """Consume ``length`` bytes: what the parser's buffer already holds (at most one socket read), then straight
    from the socket, never more than asked for (what follows is the next reply), a chunk at a time."""
    held = buffer._live_buffer()
    from_buffer = min(length, buffer.unread_bytes())
    held.seek(from_buffer, io.SEEK_CUR)
    buffer.purge()
    remaining = length - from_buffer
    while remaining > 0:
        assert buffer._sock is not None
        data = buffer._sock.recv(min(remaining, _DRAIN_CHUNK_BYTES))
        if not data:
            raise redis.ConnectionError("the broker closed the connection while a refused message was drained")
        remaining -= len(data)


def refuse_too_large(queue: bytes | str, reply: TooLargeReply) -> None:
    """Tell the admin (a ``Rejection``) and the log that a message was refused unread."""
    from dashboard.telemetry.models import Rejection

    name = queue.decode(errors="replace") if isinstance(queue, bytes) else queue
    limit = settings.WATTWISE_BROKER_MAX_MESSAGE_BYTES
    reason = (f"broker message of {reply.size_bytes} bytes on queue {name!r} refused unread: above "
              f"WATTWISE_BROKER_MAX_MESSAGE_BYTES ({limit}); agents send batches far smaller, so this one was not "
              "sent by a Wattwise agent as released, or it packed far too much into one message")
    log.error("%s", reason)
    try:
        Rejection.objects.create(kind=Rejection.Kind.REQUEST, reason_code=Rejection.Code.TOO_LARGE, reason=reason,
                                 size_bytes=min(reply.size_bytes, 2**31 - 1))
    except Exception:  # the database being down must not stop the consumer; the log line above stays
        log.exception("could not record the refused broker message")


class _SizeCheckingClient:
    """Mixed into the channel's redis client: a BRPOP whose message was refused counts as no message."""

    def parse_response(self, connection: Any, command_name: str | bytes, **options: Any) -> Any:
        response = super().parse_response(connection, command_name, **options)  # type: ignore[misc]
        if isinstance(response, (list, tuple)) and len(response) == 2 and isinstance(response[1], TooLargeReply):
            refuse_too_large(response[0], response[1])
            return None
        return response


class Channel(kombu_redis.Channel):
    # kombu's type stubs (celery-types) leave out the channel's private methods overridden here.
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]
        # RESP2, which kombu's transport has always spoken: redis-py 8 would otherwise negotiate RESP3 (another
        # parser, and a fallback to RESP2 that swaps in its own parser for servers without HELLO).
        params["protocol"] = 2
        params["parser_class"] = SizeLimitedParser
        return params

    def _get_client(self) -> Any:
        client = super()._get_client()  # type: ignore[misc]
        if isinstance(client, functools.partial):  # global_keyprefix: kombu's PrefixedStrictRedis
            prefixed: type = client.func  # type: ignore[assignment]
            return functools.partial(type("SizeCheckingPrefixedRedis", (_SizeCheckingClient, prefixed), {}),
                                     *client.args, **client.keywords)
        return type("SizeCheckingRedis", (_SizeCheckingClient, client), {})


class Transport(kombu_redis.Transport):
    Channel = Channel

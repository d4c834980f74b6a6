"""The outbox: sends envelopes in order, spooling them while the transport is unavailable.

Rules: while the spool holds anything, a new envelope joins the back of the spool and the spool drains
first, so the app always sees a stream's envelopes in the order they were made. After a failure the
transport is left alone for a back-off interval (1 s doubling to 30 s, or as long as the app's
``Retry-After`` asked), so a dead or busy app costs one quick attempt per interval, not one per envelope.
A transport that can send several envelopes in one request (``send_many``) drains the spool that way.

Two answers are not "try again later":

* ``EnvelopeRefused``: the app can never accept that envelope. It is moved out of the queue's way, with
  the app's reason, into the spool's refused file (``Spool.refuse``), and sending goes on. A refused
  request of several envelopes is sent again one at a time, so only the bad one is set aside.
* ``TokenRejected``: the app refuses the node's token. The outbox stops sending (``fatal``); everything
  posted from then on goes to the spool, where the next run (with a fixed token) finds it.

``ThreadedOutbox`` runs the same logic in a background thread, so the sampling loop never waits on the
network or on the disk. Envelopes that queued up for it while it was sending (a fast replay, a slow
answer) go together in one request.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from wattwise_agent import wire
from wattwise_agent.spool import Envelope, MemorySpool, Spool
from wattwise_agent.transport import (
    MAX_REQUEST_BYTES,
    MAX_REQUEST_ENVELOPES,
    EnvelopeRefused,
    TokenRejected,
    Transport,
    TransportUnavailable,
)

log = logging.getLogger(__name__)


class Outbox:
    """Synchronous: ``post`` returns once the envelope is sent, set aside as refused, or safely spooled.

    ``reseal`` is applied to every envelope taken from the spool before it is sent (the streamer signs
    it again when the node's token changed since it was spooled).
    """

    def __init__(
        self,
        transport: Transport,
        spool: Spool | None = None,
        *,
        on_delivered: Callable[[Envelope], None] | None = None,
        reseal: Callable[[Envelope], Envelope] | None = None,
        retry_min_s: float = 1.0,
        retry_max_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.transport = transport
        self.spool: Spool = spool if spool is not None else MemorySpool()
        self._on_delivered = on_delivered
        self._reseal = reseal
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._monotonic = monotonic
        self._sleep = sleep
        self._retry_at = 0.0
        self._backoff_s = retry_min_s
        self._down = False
        self._told_when = False  # the last failure came with the app's Retry-After
        self.fatal: TokenRejected | None = None
        self.delivered = 0
        self.refused = 0
        self.spooled = 0  # envelopes that went through the spool (now or earlier in this process)

    def post(self, envelope: Envelope) -> None:
        if self.fatal is None and len(self.spool) == 0 and self._may_try():
            try:
                self._send(envelope)
                return
            except TransportUnavailable as exc:
                self._failed(exc)
            except TokenRejected as exc:
                self._token_rejected(exc)
        self.spool.put(envelope)
        self.spooled += 1
        self.drain()

    def post_many(self, envelopes: list[Envelope]) -> None:
        """``post`` each, in order; several in one request when the transport can and nothing waits before them."""
        if len(envelopes) > 1 and hasattr(self.transport, "send_many") and self.fatal is None \
                and len(self.spool) == 0 and self._may_try():
            sent = 0
            for chunk in _requests(envelopes):
                try:
                    self._send_together(chunk)
                    sent += len(chunk)
                    continue
                except TransportUnavailable as exc:
                    self._failed(exc)
                except TokenRejected as exc:
                    self._token_rejected(exc)
                for envelope in envelopes[sent:]:
                    self.spool.put(envelope)
                    self.spooled += 1
                return
            return
        for envelope in envelopes:
            self.post(envelope)

    def drain(self, *, force: bool = False) -> bool:
        """Replay the spool in order if the transport may be tried; True when the spool is empty."""
        if len(self.spool) == 0:
            return True
        if self.fatal is not None or (not force and not self._may_try()):
            return False
        try:
            if hasattr(self.transport, "send_many"):
                replayed = self.spool.drain_many(
                    self._send_spooled_many, max_envelopes=MAX_REQUEST_ENVELOPES, max_bytes=MAX_REQUEST_BYTES
                )
            else:
                replayed = self.spool.drain(self._send_spooled)
        except TransportUnavailable as exc:
            self._failed(exc)
            return False
        except TokenRejected as exc:
            self._token_rejected(exc)
            return False
        if replayed:
            log.info("replayed %d spooled envelope(s)", replayed)
        return True

    def flush(self, timeout_s: float) -> int:
        """Try to empty the spool for up to ``timeout_s``, honouring the back-off; return what remains."""
        deadline = self._monotonic() + timeout_s
        # Retried every 0.25 s, whatever the back-off, unless the app said when (Retry-After): then not sooner.
        while self.fatal is None and not self.drain(force=not self._told_when):
            now = self._monotonic()
            wait_s = self._retry_at - now if self._told_when else 0.25
            if now + wait_s > deadline:
                break
            self._sleep(max(wait_s, 0.01))
        return len(self.spool)

    def _may_try(self) -> bool:
        return not self._down or self._monotonic() >= self._retry_at

    def _send_spooled(self, envelope: Envelope) -> None:
        self._send(self._reseal(envelope) if self._reseal is not None else envelope)

    def _send_spooled_many(self, envelopes: list[Envelope]) -> None:
        if self._reseal is not None:
            envelopes = [self._reseal(e) for e in envelopes]
        self._send_together(envelopes)

    def _send_together(self, envelopes: list[Envelope]) -> None:
        if len(envelopes) == 1:
            self._send(envelopes[0])
            return
        send_many: Callable[[list[Envelope]], None] = getattr(self.transport, "send_many")  # noqa: B009
        try:
            send_many(envelopes)
        except EnvelopeRefused as exc:
            log.warning("the app refused a request of %d envelopes (%s); sending them one at a time",
                        len(envelopes), exc)
            for envelope in envelopes:
                self._send(envelope)
            return
        self._sent()
        for envelope in envelopes:
            self._delivered(envelope)

    def _send(self, envelope: Envelope) -> None:
        try:
            self.transport.send(envelope)
        except EnvelopeRefused as exc:
            self._set_aside(envelope, exc)
            self._sent()
            return
        self._sent()
        self._delivered(envelope)

    def _sent(self) -> None:
        """The transport answered (accepted or refused for good): it is up."""
        if self._down:
            log.warning("the app (or broker) is reachable again")
        self._down = self._told_when = False
        self._backoff_s = self._retry_min_s

    def _delivered(self, envelope: Envelope) -> None:
        self.delivered += 1
        if self._on_delivered is not None:
            self._on_delivered(envelope)

    def _set_aside(self, envelope: Envelope, exc: EnvelopeRefused) -> None:
        self.spool.refuse(envelope, exc.status, exc.reason)
        self.refused += 1
        where = getattr(self.spool, "refused_path", "memory")
        log.error("the app refused a %s envelope (%d): %s; kept in %s", envelope.get("kind"), exc.status,
                  exc.reason, where)

    def _token_rejected(self, exc: TokenRejected) -> None:
        if self.fatal is None:  # the caller says so plainly (the CLI, the tracker's error)
            log.info("%s; sending stops, envelopes stay in the spool", exc)
        self.fatal = exc

    def _failed(self, exc: TransportUnavailable) -> None:
        retry_after_s = getattr(exc, "retry_after_s", None)
        if retry_after_s is not None:
            wait_s = retry_after_s  # the app said how long: neither sooner nor later
        elif self._down:
            self._backoff_s = min(self._backoff_s * 2, self._retry_max_s)
            wait_s = self._backoff_s
        else:
            wait_s = self._backoff_s
        if not self._down:
            where = getattr(self.spool, "directory", "memory")
            log.warning("%s; spooling envelopes to %s until it is back", exc, where)
        self._down = True
        self._told_when = retry_after_s is not None
        self._retry_at = self._monotonic() + wait_s


def signed_with(token: str) -> Callable[[Envelope], Envelope]:
    """An outbox's ``reseal``: a spooled envelope as it is if ``token`` signed it, else signed again with it.

    A run refused for a wrong token leaves its envelopes in the spool; once the token is fixed (``manage.py
    create_node --rotate``), the next run sends them signed with the new one. The spool is the user's
    private directory, so what it holds was made by this node's agent.
    """
    key = wire.signing_key(token)

    def reseal(envelope: Envelope) -> Envelope:
        try:
            wire.open_envelope(envelope, envelope.get("kind", ""), key)
            return envelope
        except wire.WireError:
            pass
        try:
            return wire.seal(envelope["kind"], envelope["node"], json.loads(envelope["body"]), token, check=False)
        except (KeyError, TypeError, ValueError, wire.WireError):
            return envelope  # not an envelope this agent can sign: the app will say what is wrong with it

    return reseal


def _requests(envelopes: list[Envelope]) -> list[list[Envelope]]:
    """Envelopes cut into requests of at most ``MAX_REQUEST_ENVELOPES`` and about ``MAX_REQUEST_BYTES``."""
    chunks: list[list[Envelope]] = [[]]
    size = 0
    for envelope in envelopes:
        body_bytes = len(envelope.get("body", ""))
        if chunks[-1] and (len(chunks[-1]) >= MAX_REQUEST_ENVELOPES or size + body_bytes > MAX_REQUEST_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(envelope)
        size += body_bytes
    return chunks


_STOP = object()
_QUEUE_ENVELOPES = 1024  # a producer faster than the network waits here rather than filling memory


class ThreadedOutbox:
    """An Outbox driven by a background thread; ``post`` only enqueues."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_ENVELOPES)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="wattwise-sender", daemon=True)
        self._thread.start()

    @property
    def fatal(self) -> TokenRejected | None:
        return self.outbox.fatal

    def post(self, envelope: Envelope) -> None:
        if self._error is not None:
            raise RuntimeError("the sender thread failed") from self._error
        self._queue.put(envelope)

    def _loop(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.5)
                except queue.Empty:
                    self.outbox.drain()  # retry the spool when the back-off allows
                    continue
                batch = [item]
                while item is not _STOP and len(batch) < MAX_REQUEST_ENVELOPES:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    batch.append(item)
                envelopes = [e for e in batch if e is not _STOP]
                if envelopes:
                    self.outbox.post_many(envelopes)
                if item is _STOP:
                    return
        except BaseException as exc:  # surfaced to the caller on the next post or at close
            log.exception("sender thread failed")
            self._error = exc

    def flush(self, timeout_s: float) -> int:
        """Send everything queued, try the spool until ``timeout_s``; return what remains spooled."""
        self._queue.put(_STOP)
        self._thread.join()
        if self._error is not None:
            raise RuntimeError("the sender thread failed") from self._error
        return self.outbox.flush(timeout_s)

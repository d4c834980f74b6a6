"""The outbox: sends envelopes in order, spooling them while the transport is unavailable.

Rules: while the spool holds anything, a new envelope joins the back of the spool and the spool drains
first, so the broker always sees a stream's envelopes in the order they were made. After a failure the
transport is left alone for a back-off interval (1 s doubling to 30 s), so a dead broker costs one
quick connection attempt per interval, not one per envelope.

``ThreadedOutbox`` runs the same logic in a background thread, so the sampling loop never waits on the
broker or on the disk.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from agents.spool import Envelope, MemorySpool, Spool
from agents.transport import Transport, TransportUnavailable

log = logging.getLogger(__name__)


class Outbox:
    """Synchronous: ``post`` returns once the envelope is sent or safely spooled."""

    def __init__(
        self,
        transport: Transport,
        spool: Spool | None = None,
        *,
        on_delivered: Callable[[Envelope], None] | None = None,
        retry_min_s: float = 1.0,
        retry_max_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.spool: Spool = spool if spool is not None else MemorySpool()
        self._on_delivered = on_delivered
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._monotonic = monotonic
        self._retry_at = 0.0
        self._backoff_s = retry_min_s
        self._down = False
        self.delivered = 0
        self.spooled = 0  # envelopes that went through the spool (now or earlier in this process)

    def post(self, envelope: Envelope) -> None:
        if len(self.spool) == 0 and self._may_try():
            try:
                self._send(envelope)
                return
            except TransportUnavailable as exc:
                self._failed(exc)
        self.spool.put(envelope)
        self.spooled += 1
        self.drain()

    def drain(self, *, force: bool = False) -> bool:
        """Replay the spool in order if the transport may be tried; True when the spool is empty."""
        if len(self.spool) == 0:
            return True
        if not force and not self._may_try():
            return False
        try:
            replayed = self.spool.drain(self._send)
        except TransportUnavailable as exc:
            self._failed(exc)
            return False
        if replayed:
            log.info("replayed %d spooled envelope(s)", replayed)
        return True

    def flush(self, timeout_s: float) -> int:
        """Try to empty the spool for up to ``timeout_s``; return how many envelopes remain in it."""
        deadline = self._monotonic() + timeout_s
        while not self.drain(force=True):
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                break
            time.sleep(min(0.25, remaining))
        return len(self.spool)

    def _may_try(self) -> bool:
        return not self._down or self._monotonic() >= self._retry_at

    def _send(self, envelope: Envelope) -> None:
        self.transport.send(envelope)
        if self._down:
            log.warning("broker reachable again")
        self._down = False
        self._backoff_s = self._retry_min_s
        self.delivered += 1
        if self._on_delivered is not None:
            self._on_delivered(envelope)

    def _failed(self, exc: Exception) -> None:
        if not self._down:
            where = getattr(self.spool, "directory", "memory")
            log.warning("%s; spooling envelopes to %s until it is back", exc, where)
        else:
            self._backoff_s = min(self._backoff_s * 2, self._retry_max_s)
        self._down = True
        self._retry_at = self._monotonic() + self._backoff_s


_STOP = object()


class ThreadedOutbox:
    """An Outbox driven by a background thread; ``post`` only enqueues."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._queue: queue.Queue[Any] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="wattwise-sender", daemon=True)
        self._thread.start()

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
                if item is _STOP:
                    return
                self.outbox.post(item)
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

"""The coalescing consumer's link to its broker, kept through an outage (``manage.py consume_telemetry``).

While the broker cannot be reached the consumer stays up: it says so once, at the start of the outage (the
broker's URL without its password, and the error), removes its ready file so that the health check fails,
and tries again 0.1 s doubling to ``LONGEST_WAIT_S`` apart, looking at its stop flag at least every
``STOP_CHECK_S``. Once a call goes through again (a connection alone is not enough), it says how long the
broker was out and makes the ready file again.

Only the broker's own calls count (connecting, taking, acknowledging, putting back, restoring: each wrapped
in ``broker_call``): what the database raises while a group is stored is never taken for an outage; it is
``dashboard.telemetry.delivery``'s to handle, as before. Messages taken and not acknowledged when the link
dropped stay in the broker's keeping (on Redis kombu's ``unacked`` hash, on RabbitMQ the channel's unacked
messages) and come back to be stored, or found duplicates by their receipts (``dashboard.telemetry.consumer``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

FIRST_WAIT_S = 0.1
LONGEST_WAIT_S = 2.0
STOP_CHECK_S = 0.1


class BrokerUnreachable(Exception):
    """A call to the broker failed as a lost or refused connection does; ``__cause__`` is the transport's error."""


@contextmanager
def broker_call(errors: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Raise the transport's connection ``errors`` from the calls inside as ``BrokerUnreachable``."""
    try:
        yield
    except errors as exc:
        raise BrokerUnreachable(describe(exc)) from exc


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"


class Link:
    """What the operator and the health check are told of the link: the ready file is there while calls to the
    broker go through; one line when an outage starts, one when it ends."""

    def __init__(self, broker_url: str, ready_file: Path | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.broker_url = broker_url  # as shown: without its password (kombu's ``maybe_sanitize_url``)
        self.ready_file = ready_file
        self.clock = clock
        self.down_since: float | None = None
        self.wait_s = FIRST_WAIT_S
        self.is_up = False

    def up(self) -> None:
        """A call to the broker went through (not merely a connection made: a broker that takes connections and
        fails every call must not make the ready file come and go, nor reset the wait between tries)."""
        if self.is_up:
            return
        self.is_up = True
        if self.down_since is None:
            log.info("telemetry consumer: consuming on broker %s", self.broker_url)
        else:
            # A warning, not info: the line that ends an error is shown wherever that error was.
            log.warning("telemetry consumer: broker %s is back after %.1f s; consuming again", self.broker_url,
                        self.clock() - self.down_since)
        self.down_since = None
        self.wait_s = FIRST_WAIT_S
        if self.ready_file is not None:
            self.ready_file.touch()

    def close(self) -> None:
        """The consumer stops: its ready file goes (a stale one would read as healthy)."""
        if self.ready_file is not None:
            self.ready_file.unlink(missing_ok=True)

    def down(self, error: BrokerUnreachable) -> float:
        """Record a failed call (the first of an outage is logged); how long to wait before trying again."""
        self.is_up = False
        if self.down_since is None:
            self.down_since = self.clock()
            log.error("telemetry consumer: broker %s unreachable (%s); not ready until it is back, trying again "
                      "%.1f s doubling to %.0f s apart", self.broker_url, error, FIRST_WAIT_S, LONGEST_WAIT_S)
        else:
            log.debug("telemetry consumer: broker %s still unreachable (%s)", self.broker_url, error)
        if self.ready_file is not None:
            self.ready_file.unlink(missing_ok=True)
        wait_s, self.wait_s = self.wait_s, min(self.wait_s * 2, LONGEST_WAIT_S)
        return wait_s


def keep_consuming(session: Callable[[], None], link: Link, *, stop: Callable[[], bool]) -> None:
    """Run ``session`` (connect, consume until ``stop()``, ``link.up()`` after each call that went through), again
    after every ``BrokerUnreachable`` it raises, until ``stop()``. Anything else it raises (the database's, a
    bug) ends the consumer as before."""
    while not stop():
        try:
            session()
            return
        except BrokerUnreachable as exc:
            pause(link.down(exc), stop)


def pause(wait_s: float, stop: Callable[[], bool]) -> None:
    """Sleep ``wait_s``, or less once ``stop()`` holds (SIGTERM during an outage stops the consumer promptly)."""
    until = time.monotonic() + wait_s
    while not stop() and (left_s := until - time.monotonic()) > 0:
        time.sleep(min(left_s, STOP_CHECK_S))

"""Clocks for the agent: real time for live runs, a virtual clock for fast replays of a past period.

Sample timestamps must strictly increase (the wire rejects a GPU whose ``t_ms`` goes backwards), so the
real clock reads the wall clock once and then advances it with the monotonic clock: an NTP step during
a run can neither repeat nor reverse a timestamp.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Milliseconds since the Unix epoch, and a way to wait for a later instant."""

    virtual: bool

    def now_ms(self) -> int: ...

    def sleep_until(self, t_ms: int, stop: threading.Event | None = None) -> None: ...


class RealClock:
    """Wall-clock milliseconds, anchored once and advanced monotonically."""

    virtual = False

    def __init__(self) -> None:
        self._anchor_wall_ns = time.time_ns()
        self._anchor_mono_ns = time.monotonic_ns()

    def now_ms(self) -> int:
        return (self._anchor_wall_ns + time.monotonic_ns() - self._anchor_mono_ns) // 1_000_000

    def sleep_until(self, t_ms: int, stop: threading.Event | None = None) -> None:
        delay_s = (t_ms - self.now_ms()) / 1000
        if delay_s <= 0:
            return
        if stop is not None:
            stop.wait(delay_s)
        else:
            time.sleep(delay_s)


class VirtualClock:
    """A clock that jumps instead of sleeping: replays run as fast as the machine allows."""

    virtual = True

    def __init__(self, start_ms: int) -> None:
        self._now_ms = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now_ms

    def sleep_until(self, t_ms: int, stop: threading.Event | None = None) -> None:
        with self._lock:
            self._now_ms = max(self._now_ms, t_ms)


class SteppedClock:
    """Virtual time that the program moves on itself (``advance_by``), for replays driven by a loop.

    ``sleep_until`` waits until the program has moved time that far (or ``stop`` is set), so a sampler
    on this clock reads at the loop's instants and never runs ahead of it: a training loop that moves
    the clock on by a fixed step after each step is measured over the same simulated interval every run.
    """

    virtual = True
    POLL_S = 0.05  # how often a waiting sampler looks at ``stop``

    def __init__(self, start_ms: int) -> None:
        self._now_ms = start_ms
        self._moved = threading.Condition()

    def now_ms(self) -> int:
        with self._moved:
            return self._now_ms

    def advance_by(self, ms: int) -> int:
        """Move time on by ``ms`` (whole ms, not negative); returns the new time."""
        if ms < 0:
            raise ValueError("time only moves forward")
        with self._moved:
            self._now_ms += int(ms)
            self._moved.notify_all()
            return self._now_ms

    def sleep_until(self, t_ms: int, stop: threading.Event | None = None) -> None:
        with self._moved:
            while self._now_ms < t_ms and not (stop is not None and stop.is_set()):
                self._moved.wait(self.POLL_S)

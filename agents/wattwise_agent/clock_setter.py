"""The plan client's helper thread: it applies the latest clock asked for, off the training thread."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading

from wattwise_agent.clock_guard import ClockActuator

log = logging.getLogger("wattwise_agent.plan_client")

_STOP = object()


class ClockSetter:
    """A helper thread that applies the latest requested clock (intermediate ones are skipped if late)."""

    def __init__(self, actuator: ClockActuator) -> None:
        self._actuator = actuator
        self._queue: queue.Queue[object] = queue.Queue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="wattwise-clock-setter", daemon=True)
        self._thread.start()

    def submit(self, freq_mhz: int) -> None:
        self._queue.put(freq_mhz)

    def flush(self) -> None:
        """Wait until every submitted clock has been handled."""
        self._queue.join()

    def stop(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    items.append(self._queue.get_nowait())
            try:
                latest = next((i for i in reversed(items) if isinstance(i, int)), None)
                if latest is not None and self.error is None:
                    try:
                        self._actuator.set_mhz(latest)
                    except BaseException as exc:  # reported on the training thread at the next step end
                        log.error("could not set the GPU clock: %s", exc)
                        self.error = exc
            finally:
                for _ in items:
                    self._queue.task_done()
            if any(i is _STOP for i in items):
                return

"""The one object allowed to change GPU power limits, under the clock rule of :mod:`wattwise_agent.clock_guard`.

The same two opt-ins as clocks: the caller passes ``allow_clock_changes=True`` **and** the machine has
``WATTWISE_ALLOW_CLOCK_CHANGES=1``; without the argument it is a dry run (the limits it would set are
recorded and logged, none is set); with the argument but without the variable it refuses
(:class:`~wattwise_agent.clock_guard.ClockChangesRefused`). A limit it set is restored to the GPU's default
when it is closed, at interpreter exit and on SIGTERM (one handler with the clock locks: ``EXIT_RESETS``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from wattwise_agent.backends.clocks import ClockControlError
from wattwise_agent.backends.power_limits import GpuPowerLimits
from wattwise_agent.clock_guard import EXIT_RESETS, ClockChangesRefused, clock_changes_permitted

log = logging.getLogger(__name__)


class PowerLimitActuator:
    """Sets one power limit on a set of GPUs, only when it changes; records everything; resets on exit."""

    def __init__(
        self,
        limits: GpuPowerLimits | None,
        *,
        allow_clock_changes: bool = False,
        environ: Mapping[str, str] | None = None,
        handle_sigterm: bool = True,
    ) -> None:
        self.dry_run = not clock_changes_permitted(allow_clock_changes, environ)
        if not self.dry_run and limits is None:
            raise ClockChangesRefused("this GPU backend has no power-limit control: use the nvml or emulated "
                                      "backend, or a dry run")
        self._limits = limits
        self._lock = threading.RLock()
        self._current_w: int | None = None
        self._set = False
        self._closed = False
        self.requested_w: list[int] = []  # every change asked for, in order (what a dry run would have set)
        self.applied_w: list[int] = []  # limits really set (always empty in a dry run)
        self.resets = 0
        if not self.dry_run:
            EXIT_RESETS.arm(self._reset_at_exit, handle_sigterm=handle_sigterm)

    @property
    def description(self) -> str:
        return self._limits.description if self._limits is not None else "no power-limit control"

    @property
    def current_w(self) -> int | None:
        """The limit last set (or, in a dry run, that would have been set); None: the default limit."""
        return self._current_w

    def range_w(self) -> tuple[int, int] | None:
        """The lowest and highest accepted limit in W (reading it changes nothing); None if unknown."""
        return self._limits.power_limit_range_w() if self._limits is not None else None

    def set_w(self, limit_w: int) -> bool:
        """Set the power limit to ``limit_w`` unless it already is; True when it was a change."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the power-limit actuator is closed")
            if limit_w == self._current_w:
                return False
            self.requested_w.append(limit_w)
            self._current_w = limit_w
            if self.dry_run:
                log.info("dry run: would set the power limit of %s to %d W", self.description, limit_w)
                return True
            assert self._limits is not None
            self._set = True
            try:
                self._limits.set_power_limit_w(limit_w)
            except BaseException:
                self._current_w = None
                self._reset_after_failure()
                raise
            self.applied_w.append(limit_w)
            log.debug("set the power limit of %s to %d W", self.description, limit_w)
            return True

    def _reset_after_failure(self) -> None:
        try:
            self.reset()
        except ClockControlError as exc:
            log.warning("after a failed power-limit change, restoring the default failed too: %s", exc)
            self._set = bool(self.applied_w)

    def reset(self) -> None:
        """Restore the default power limit if this actuator set one (idempotent)."""
        with self._lock:
            self._current_w = None
            if not self._set:
                return
            assert self._limits is not None
            self._set = False
            self.resets += 1
            self._limits.reset_power_limit()
            log.info("restored the default power limit of %s", self.description)

    def close(self) -> None:
        """Reset and refuse further changes (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self.reset()
            finally:
                if not self.dry_run:
                    EXIT_RESETS.disarm(self._reset_at_exit)

    def _reset_at_exit(self) -> None:
        try:
            self.reset()
        except (ClockControlError, OSError) as exc:
            log.error("could not restore the default GPU power limit at exit: %s", exc)

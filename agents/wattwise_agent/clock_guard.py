"""The safety rule on GPU clocks, and the one object allowed to change them.

Changing clocks needs two things: the caller passes ``allow_clock_changes=True`` **and** the machine's
environment has ``WATTWISE_ALLOW_CLOCK_CHANGES=1`` (set by whoever runs the machine, not by the code).
Without the argument everything is a dry run: the values that would have been set are recorded and
logged, and no clock-setting call is made. With the argument but without the variable, nothing runs:
:class:`ClockChangesRefused` is raised, so a job that expects to change clocks never silently runs at
default clocks, nor changes them on a machine whose owner did not agree.

Every clock locked through a :class:`ClockActuator` (and every power limit set through
:class:`wattwise_agent.power_guard.PowerLimitActuator`, under the same rule; both are a
:class:`GpuSettingActuator`, which owns this lifecycle) is reset when it is closed
(its users are context managers), at interpreter exit (``atexit``), and on SIGTERM when the process had
no SIGTERM handler of its own (one handler resets every armed actuator, then lets SIGTERM end the
process as it would have). SIGKILL, or a crash of the interpreter itself, cannot be caught: the lock
then stays until ``nvidia-smi --reset-gpu-clocks`` (``nvidia-smi -pl`` for a power limit) or a driver
reload.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from wattwise_agent.backends.clocks import ClockControlError, GpuClocks

log = logging.getLogger(__name__)

ALLOW_CLOCK_CHANGES_ENV = "WATTWISE_ALLOW_CLOCK_CHANGES"


class ClockChangesRefused(PermissionError):
    """Clock changes were asked for on a machine that does not permit them."""


def clock_changes_permitted(allow_clock_changes: bool, environ: Mapping[str, str] | None = None) -> bool:
    """True when clocks may be changed; False for a dry run; raise when asked for but not permitted."""
    if not allow_clock_changes:
        return False
    environ = os.environ if environ is None else environ
    value = environ.get(ALLOW_CLOCK_CHANGES_ENV)
    if value != "1":
        shown = "unset" if value is None else f"{value!r}"
        raise ClockChangesRefused(
            f"allow_clock_changes=True, but {ALLOW_CLOCK_CHANGES_ENV} is {shown} on this machine: refusing to "
            f"change GPU clocks. Set {ALLOW_CLOCK_CHANGES_ENV}=1 only on machines where changing clocks is "
            "permitted (it needs root or CAP_SYS_ADMIN too), or drop allow_clock_changes for a dry run."
        )
    return True


class ExitResets:
    """Resets to run at interpreter exit and on SIGTERM, for every actuator that changed a GPU setting.

    One SIGTERM handler serves them all (installed with the first, removed with the last), so a process
    holding both a clock lock and a power limit resets both before SIGTERM ends it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resets: list[Callable[[], None]] = []
        self._previous_sigterm: Any = None
        self._sigterm_installed = False

    def arm(self, reset: Callable[[], None], *, handle_sigterm: bool = True) -> None:
        atexit.register(reset)
        with self._lock:
            self._resets.append(reset)
        if handle_sigterm and not self._sigterm_installed and threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGTERM)
            if previous in (signal.SIG_DFL, None):
                self._previous_sigterm = previous
                signal.signal(signal.SIGTERM, self._on_sigterm)
                self._sigterm_installed = True

    def disarm(self, reset: Callable[[], None]) -> None:
        atexit.unregister(reset)
        with self._lock:
            if reset in self._resets:
                self._resets.remove(reset)
            last = not self._resets
        if last and self._sigterm_installed and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                signal.signal(signal.SIGTERM, self._previous_sigterm or signal.SIG_DFL)
            self._sigterm_installed = False

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        with self._lock:
            resets = list(reversed(self._resets))
        for reset in resets:
            reset()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


EXIT_RESETS = ExitResets()


class GpuSettingActuator:
    """The lifecycle of one GPU setting (an SM clock, a power limit) shared by every actuator.

    It owns the rule (dry run, the two opt-ins), the lock, the record of changes (``requested``,
    ``applied``), setting a value only when it changes, restoring the default after a failed change, the
    idempotent ``reset``, ``close``, and the reset at exit and on SIGTERM (``EXIT_RESETS``, armed when a
    real, not dry, actuator is made, on the creating, usually main, thread: signal handlers can only be set
    there). A subclass supplies only the hardware calls (:meth:`_apply`, :meth:`_restore`), its description
    and the words of its messages. Thread-safe: the plan client sets clocks from a helper thread while the
    training thread may close.
    """

    #: Words for messages, set by each subclass.
    name = "GPU setting"  # "the {name} actuator is closed"
    changed = "set the GPU setting of {gpus} to {value}"  # "dry run: would {changed}" / "{changed}"
    restored = "restored the default GPU setting of {gpus}"
    exit_failure = "could not restore the default GPU setting at exit"
    failure_reset_failure = "after a failed change, restoring the default failed too"

    def __init__(self, control: object | None, *, allow_clock_changes: bool, environ: Mapping[str, str] | None,
                 handle_sigterm: bool, no_control: str) -> None:
        self.dry_run = not clock_changes_permitted(allow_clock_changes, environ)
        if not self.dry_run and control is None:
            raise ClockChangesRefused(no_control)
        self._lock = threading.RLock()
        self._current: int | None = None
        self._changed = False  # a real change may be in force: reset() has something to restore
        self._closed = False
        self.requested: list[int] = []  # every change asked for, in order (what a dry run would have set)
        self.applied: list[int] = []  # values really set (always empty in a dry run)
        self.resets = 0
        if not self.dry_run:
            EXIT_RESETS.arm(self._reset_at_exit, handle_sigterm=handle_sigterm)

    @property
    def description(self) -> str:
        raise NotImplementedError

    def _apply(self, value: int) -> None:
        """Set ``value`` on every GPU (only called on a real actuator)."""
        raise NotImplementedError

    def _restore(self) -> None:
        """Restore every GPU's default (only called on a real actuator)."""
        raise NotImplementedError

    def _set(self, value: int) -> bool:
        """Set ``value`` unless it already is; True when it was a change."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.name} actuator is closed")
            if value == self._current:
                return False
            self.requested.append(value)
            if self.dry_run:
                log.info("dry run: would %s", self.changed.format(gpus=self.description, value=value))
                self._current = value
                return True
            self._changed = True
            try:
                self._apply(value)
            except BaseException:
                self._undo_failed_change()
                raise
            self._current = value
            self.applied.append(value)
            log.debug("%s", self.changed.format(gpus=self.description, value=value))
            return True

    def _undo_failed_change(self) -> None:
        # Some GPUs may have changed before one failed: restore them all, best effort.
        self._current = None
        try:
            self._restore()
        except ClockControlError as exc:
            log.warning("%s: %s", self.failure_reset_failure, exc)
            # Nothing was ever changed (e.g. no permission at all): nothing to reset at exit either.
            self._changed = bool(self.applied)
            return
        self._changed = False

    def reset(self) -> None:
        """Restore the default if this actuator changed anything (idempotent)."""
        with self._lock:
            self._current = None
            if not self._changed:
                return
            self._changed = False
            self.resets += 1
            self._restore()
            log.info("%s", self.restored.format(gpus=self.description))

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
            log.error("%s: %s", self.exit_failure, exc)


class ClockActuator(GpuSettingActuator):
    """Sets one SM clock on a stage's GPUs, only when it changes; records everything; resets on exit.

    ``clocks`` is the hardware edge (None where the backend has none: then only a dry run is possible).
    """

    name = "clock"
    changed = "lock the SM clock of {gpus} to {value} MHz"
    restored = "reset the SM clocks of {gpus}"
    exit_failure = "could not reset GPU clocks at exit"
    failure_reset_failure = "after a failed lock, the reset failed too"

    def __init__(
        self,
        clocks: GpuClocks | None,
        *,
        allow_clock_changes: bool = False,
        environ: Mapping[str, str] | None = None,
        handle_sigterm: bool = True,
    ) -> None:
        self._clocks = clocks
        super().__init__(clocks, allow_clock_changes=allow_clock_changes, environ=environ,
                         handle_sigterm=handle_sigterm,
                         no_control="this GPU backend has no clock control (the simulator changes no clocks): use "
                                    "the nvml or emulated backend, or a dry run")

    @property
    def description(self) -> str:
        return self._clocks.description if self._clocks is not None else "no clock control"

    @property
    def requested_mhz(self) -> list[int]:
        """Every change asked for, in order (what a dry run would have set)."""
        return self.requested

    @property
    def applied_mhz(self) -> list[int]:
        """The clocks really locked (always empty in a dry run)."""
        return self.applied

    @property
    def current_mhz(self) -> int | None:
        """The value last set (or, in a dry run, that would have been set); None: default clocks."""
        return self._current

    def supported_mhz(self) -> list[int] | None:
        """The supported SM clocks, highest first (reading them changes nothing); None if unknown."""
        if self._clocks is None:
            return None
        return self._clocks.supported_graphics_clocks_mhz()

    def set_mhz(self, freq_mhz: int) -> bool:
        """Lock the SM clock to ``freq_mhz`` unless it already is; True when it was a change."""
        return self._set(freq_mhz)

    def _apply(self, value: int) -> None:
        assert self._clocks is not None
        self._clocks.lock_graphics_clock(value)

    def _restore(self) -> None:
        assert self._clocks is not None
        self._clocks.reset_graphics_clock()

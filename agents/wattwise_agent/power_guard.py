"""The one object allowed to change GPU power limits, under the clock rule of :mod:`wattwise_agent.clock_guard`.

The same two opt-ins as clocks: the caller passes ``allow_clock_changes=True`` **and** the machine has
``WATTWISE_ALLOW_CLOCK_CHANGES=1``; without the argument it is a dry run (the limits it would set are
recorded and logged, none is set); with the argument but without the variable it refuses
(:class:`~wattwise_agent.clock_guard.ClockChangesRefused`). A limit it set is restored to the GPU's default
when it is closed, at interpreter exit and on SIGTERM (one handler with the clock locks: ``EXIT_RESETS``).
The lifecycle is :class:`~wattwise_agent.clock_guard.GpuSettingActuator`'s; this class only sets limits.
"""

from __future__ import annotations

from collections.abc import Mapping

from wattwise_agent.backends.power_limits import GpuPowerLimits
from wattwise_agent.clock_guard import GpuSettingActuator


class PowerLimitActuator(GpuSettingActuator):
    """Sets one power limit on a set of GPUs, only when it changes; records everything; resets on exit."""

    name = "power-limit"
    changed = "set the power limit of {gpus} to {value} W"
    restored = "restored the default power limit of {gpus}"
    exit_failure = "could not restore the default GPU power limit at exit"
    failure_reset_failure = "after a failed power-limit change, restoring the default failed too"

    def __init__(
        self,
        limits: GpuPowerLimits | None,
        *,
        allow_clock_changes: bool = False,
        environ: Mapping[str, str] | None = None,
        handle_sigterm: bool = True,
    ) -> None:
        self._limits = limits
        super().__init__(limits, allow_clock_changes=allow_clock_changes, environ=environ,
                         handle_sigterm=handle_sigterm,
                         no_control="this GPU backend has no power-limit control: use the nvml or emulated "
                                    "backend, or a dry run")

    @property
    def description(self) -> str:
        return self._limits.description if self._limits is not None else "no power-limit control"

    @property
    def requested_w(self) -> list[int]:
        """Every change asked for, in order (what a dry run would have set)."""
        return self.requested

    @property
    def applied_w(self) -> list[int]:
        """The limits really set (always empty in a dry run)."""
        return self.applied

    @property
    def current_w(self) -> int | None:
        """The limit last set (or, in a dry run, that would have been set); None: the default limit."""
        return self._current

    def range_w(self) -> tuple[int, int] | None:
        """The lowest and highest accepted limit in W (reading it changes nothing); None if unknown."""
        return self._limits.power_limit_range_w() if self._limits is not None else None

    def set_w(self, limit_w: int) -> bool:
        """Set the power limit to ``limit_w`` unless it already is; True when it was a change."""
        return self._set(limit_w)

    def _apply(self, value: int) -> None:
        assert self._limits is not None
        self._limits.set_power_limit_w(value)

    def _restore(self) -> None:
        assert self._limits is not None
        self._limits.reset_power_limit()

"""GPU power limits at the hardware edge: the range a GPU accepts, setting a limit, restoring the default.

Only :class:`wattwise_agent.power_guard.PowerLimitActuator` calls ``set_power_limit_w`` or
``reset_power_limit``; it applies the clock rule of :mod:`wattwise_agent.clock_guard` (dry run by
default, two opt-ins). Reading the range changes nothing and is always allowed.

NVML calls (the ones Zeus's ``GlobalPowerLimitOptimizer`` uses): ``nvmlDeviceGetPowerManagementLimitConstraints``
(min, max in mW), ``nvmlDeviceGetPowerManagementDefaultLimit`` and ``nvmlDeviceSetPowerManagementLimit``
(mW; root or ``CAP_SYS_ADMIN``). A limit outlives the process that set it, which is why every limit is
reset (to the default limit) on exit.
"""

from __future__ import annotations

from typing import Any, Protocol

from wattwise_agent.backends.clocks import ClockControlError, NvmlGpus

POWER_LIMITS = "power limits"


class GpuPowerLimits(Protocol):
    """Power-limit control for a set of GPUs (all get the same limit)."""

    @property
    def description(self) -> str:
        """Which GPUs, for messages."""
        ...

    def power_limit_range_w(self) -> tuple[int, int]:
        """The lowest and highest limit (W) every GPU accepts."""
        ...

    def set_power_limit_w(self, limit_w: int) -> None:
        """Set the power limit of every GPU to ``limit_w``."""
        ...

    def reset_power_limit(self) -> None:
        """Restore every GPU's default power limit."""
        ...


class NvmlPowerLimits(NvmlGpus):
    """:class:`GpuPowerLimits` through NVML, for the handles of an ``NvmlBackend``."""

    def power_limit_range_w(self) -> tuple[int, int]:
        ranges_mw = self._on_each(self._nvml.nvmlDeviceGetPowerManagementLimitConstraints,
                                  "cannot read its power limit range")
        low = max([0] + [-(-int(min_mw) // 1000) for min_mw, _ in ranges_mw])  # whole W every GPU accepts
        high = min(int(max_mw) // 1000 for _, max_mw in ranges_mw)
        if high < low:
            raise ClockControlError(f"GPUs {self.description} accept no common power limit")
        return low, high

    def set_power_limit_w(self, limit_w: int) -> None:
        self._on_each(lambda handle: self._nvml.nvmlDeviceSetPowerManagementLimit(handle, int(limit_w) * 1000),
                      f"cannot set the power limit to {limit_w} W", POWER_LIMITS)

    def reset_power_limit(self) -> None:
        def restore(handle: Any) -> None:
            default_mw = self._nvml.nvmlDeviceGetPowerManagementDefaultLimit(handle)
            self._nvml.nvmlDeviceSetPowerManagementLimit(handle, default_mw)

        self._on_all(restore, "cannot restore the default power limit", POWER_LIMITS,
                     "restore it by hand: nvidia-smi -pl <default watts>")

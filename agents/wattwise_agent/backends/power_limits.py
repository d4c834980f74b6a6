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

from collections.abc import Sequence
from typing import Any, Protocol

from wattwise_agent.backends.clocks import ClockControlError, change_hint

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


class NvmlPowerLimits:
    """:class:`GpuPowerLimits` through NVML, for the handles of an ``NvmlBackend``."""

    def __init__(self, nvml: Any, handles: Sequence[Any], uuids: Sequence[str]) -> None:
        if not handles or len(handles) != len(uuids):
            raise ValueError("NvmlPowerLimits needs one UUID per handle, and at least one GPU")
        self._nvml = nvml
        self._handles = list(handles)
        self._uuids = list(uuids)

    @property
    def description(self) -> str:
        return ", ".join(self._uuids)

    def power_limit_range_w(self) -> tuple[int, int]:
        low, high = 0, None
        for handle, uuid in zip(self._handles, self._uuids):
            try:
                min_mw, max_mw = self._nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle)
            except self._nvml.NVMLError as exc:
                raise ClockControlError(f"GPU {uuid}: cannot read its power limit range ({exc})") from None
            low = max(low, -(-int(min_mw) // 1000))
            high = int(max_mw) // 1000 if high is None else min(high, int(max_mw) // 1000)
        assert high is not None
        if high < low:
            raise ClockControlError(f"GPUs {self.description} accept no common power limit")
        return low, high

    def set_power_limit_w(self, limit_w: int) -> None:
        for handle, uuid in zip(self._handles, self._uuids):
            try:
                self._nvml.nvmlDeviceSetPowerManagementLimit(handle, int(limit_w) * 1000)
            except self._nvml.NVMLError as exc:
                raise ClockControlError(f"GPU {uuid}: cannot set the power limit to {limit_w} W ({exc})"
                                        f"{change_hint(exc, POWER_LIMITS)}") from None

    def reset_power_limit(self) -> None:
        failures = []
        for handle, uuid in zip(self._handles, self._uuids):
            try:
                default_mw = self._nvml.nvmlDeviceGetPowerManagementDefaultLimit(handle)
                self._nvml.nvmlDeviceSetPowerManagementLimit(handle, default_mw)
            except self._nvml.NVMLError as exc:  # try every GPU before reporting
                failures.append(f"GPU {uuid}: {exc}{change_hint(exc, POWER_LIMITS)}")
        if failures:
            raise ClockControlError("cannot restore the default power limit: " + "; ".join(failures)
                                    + " (restore it by hand: nvidia-smi -pl <default watts>)")

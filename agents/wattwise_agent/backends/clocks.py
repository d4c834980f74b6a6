"""GPU clock control at the hardware edge: the supported SM clocks, locking them, resetting them.

Only :class:`wattwise_agent.clock_guard.ClockActuator` calls ``lock_graphics_clock`` or ``reset_graphics_clock``;
it decides whether this machine may have its clocks changed at all (dry run by default). Reading the
supported clocks changes nothing and is always allowed.

NVML calls (the ones Zeus's pipeline frequency optimizer and the Perseus artifact's profiler use):
``nvmlDeviceGetSupportedMemoryClocks`` and
``nvmlDeviceGetSupportedGraphicsClocks(handle, max memory clock)`` for the SM clocks a GPU can be
locked to; ``nvmlDeviceSetGpuLockedClocks(handle, f, f)`` to lock; ``nvmlDeviceResetGpuLockedClocks``
to give control back to the driver. Locking needs root or ``CAP_SYS_ADMIN``. A locked clock outlives
the process that set it (until reset, or a driver reload), which is why every lock is reset on exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

ERROR_NO_PERMISSION = 4
ERROR_NOT_SUPPORTED = 3


class ClockControlError(RuntimeError):
    """The driver refused a clock query or change; the text says why and what to do."""


class GpuClocks(Protocol):
    """Clock control for the GPUs of one pipeline stage (all of them get the same SM clock)."""

    @property
    def description(self) -> str:
        """Which GPUs, for messages."""
        ...

    def supported_graphics_clocks_mhz(self) -> list[int]:
        """SM clocks every GPU supports at its maximum memory clock, highest first."""
        ...

    def lock_graphics_clock(self, freq_mhz: int) -> None:
        """Lock the SM clock of every GPU to ``freq_mhz`` (minimum = maximum)."""
        ...

    def reset_graphics_clock(self) -> None:
        """Give SM clock control back to the driver."""
        ...


class NvmlClocks:
    """:class:`GpuClocks` through NVML, for the handles of an ``NvmlBackend``."""

    def __init__(self, nvml: Any, handles: Sequence[Any], uuids: Sequence[str]) -> None:
        if not handles or len(handles) != len(uuids):
            raise ValueError("NvmlClocks needs one UUID per handle, and at least one GPU")
        self._nvml = nvml
        self._handles = list(handles)
        self._uuids = list(uuids)

    @property
    def description(self) -> str:
        return ", ".join(self._uuids)

    def supported_graphics_clocks_mhz(self) -> list[int]:
        common: set[int] | None = None
        for handle, uuid in zip(self._handles, self._uuids):
            try:
                memory = max(int(m) for m in self._nvml.nvmlDeviceGetSupportedMemoryClocks(handle))
                clocks = {int(f) for f in self._nvml.nvmlDeviceGetSupportedGraphicsClocks(handle, memory)}
            except self._nvml.NVMLError as exc:
                raise ClockControlError(f"GPU {uuid}: cannot list its supported clocks ({exc})") from None
            except ValueError:
                raise ClockControlError(f"GPU {uuid}: NVML lists no supported memory clock") from None
            common = clocks if common is None else common & clocks
        return sorted(common or (), reverse=True)

    def lock_graphics_clock(self, freq_mhz: int) -> None:
        for handle, uuid in zip(self._handles, self._uuids):
            try:
                self._nvml.nvmlDeviceSetGpuLockedClocks(handle, freq_mhz, freq_mhz)
            except self._nvml.NVMLError as exc:
                raise ClockControlError(f"GPU {uuid}: cannot lock the SM clock to {freq_mhz} MHz "
                                        f"({exc}){change_hint(exc)}") from None

    def reset_graphics_clock(self) -> None:
        failures = []
        for handle, uuid in zip(self._handles, self._uuids):
            try:
                self._nvml.nvmlDeviceResetGpuLockedClocks(handle)
            except self._nvml.NVMLError as exc:  # try every GPU before reporting
                failures.append(f"GPU {uuid}: {exc}{change_hint(exc)}")
        if failures:
            raise ClockControlError("cannot reset locked clocks: " + "; ".join(failures)
                                    + " (reset by hand: nvidia-smi --reset-gpu-clocks)")


def change_hint(exc: Any, what: str = "locked clocks") -> str:
    """What to do about an NVML error from a clock or power-limit change."""
    if getattr(exc, "value", None) == ERROR_NO_PERMISSION:
        return f": changing {what} needs root or CAP_SYS_ADMIN"
    if getattr(exc, "value", None) == ERROR_NOT_SUPPORTED:
        return f": this GPU does not support {what}"
    return ""

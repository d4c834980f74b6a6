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

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

ERROR_NO_PERMISSION = 4
ERROR_NOT_SUPPORTED = 3
LOCKED_CLOCKS = "locked clocks"

T = TypeVar("T")


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


class NvmlGpus:
    """The NVML handles of a set of GPUs, and the two loops every NVML control runs over them.

    :class:`NvmlClocks` and :class:`~wattwise_agent.backends.power_limits.NvmlPowerLimits` build on it: each
    NVML error becomes a :class:`ClockControlError` naming the GPU, what was being done and, for a change, what
    to do about it (:func:`change_hint`).
    """

    def __init__(self, nvml: Any, handles: Sequence[Any], uuids: Sequence[str]) -> None:
        if not handles or len(handles) != len(uuids):
            raise ValueError(f"{type(self).__name__} needs one UUID per handle, and at least one GPU")
        self._nvml = nvml
        self._handles = list(handles)
        self._uuids = list(uuids)

    @property
    def description(self) -> str:
        return ", ".join(self._uuids)

    def _on_each(self, call: Callable[[Any], T], doing: str, what: str | None = None) -> list[T]:
        """``call(handle)`` on every GPU in turn, stopping at the first NVML error ("GPU x: {doing} (error)").

        ``what`` (for a change: "locked clocks", "power limits") adds what to do about a refusal.
        """
        results = []
        for handle, uuid in zip(self._handles, self._uuids):
            try:
                results.append(call(handle))
            except self._nvml.NVMLError as exc:
                hint = change_hint(exc, what) if what is not None else ""
                raise ClockControlError(f"GPU {uuid}: {doing} ({exc}){hint}") from None
        return results

    def _on_all(self, call: Callable[[Any], object], failed: str, what: str, by_hand: str) -> None:
        """``call(handle)`` on every GPU even when some fail (a reset), then one error naming each failure."""
        failures = []
        for handle, uuid in zip(self._handles, self._uuids):
            try:
                call(handle)
            except self._nvml.NVMLError as exc:  # try every GPU before reporting
                failures.append(f"GPU {uuid}: {exc}{change_hint(exc, what)}")
        if failures:
            raise ClockControlError(f"{failed}: " + "; ".join(failures) + f" ({by_hand})")


class NvmlClocks(NvmlGpus):
    """:class:`GpuClocks` through NVML, for the handles of an ``NvmlBackend``."""

    def supported_graphics_clocks_mhz(self) -> list[int]:
        def clocks_mhz(handle: Any) -> set[int] | None:
            memory_mhz = max((int(m) for m in self._nvml.nvmlDeviceGetSupportedMemoryClocks(handle)), default=None)
            if memory_mhz is None:
                return None
            return {int(f) for f in self._nvml.nvmlDeviceGetSupportedGraphicsClocks(handle, memory_mhz)}

        common: set[int] | None = None
        for uuid, clocks in zip(self._uuids, self._on_each(clocks_mhz, "cannot list its supported clocks")):
            if clocks is None:
                raise ClockControlError(f"GPU {uuid}: NVML lists no supported memory clock")
            common = clocks if common is None else common & clocks
        return sorted(common or (), reverse=True)

    def lock_graphics_clock(self, freq_mhz: int) -> None:
        self._on_each(lambda handle: self._nvml.nvmlDeviceSetGpuLockedClocks(handle, freq_mhz, freq_mhz),
                      f"cannot lock the SM clock to {freq_mhz} MHz", LOCKED_CLOCKS)

    def reset_graphics_clock(self) -> None:
        self._on_all(self._nvml.nvmlDeviceResetGpuLockedClocks, "cannot reset locked clocks", LOCKED_CLOCKS,
                     "reset by hand: nvidia-smi --reset-gpu-clocks")


def change_hint(exc: Any, what: str = LOCKED_CLOCKS) -> str:
    """What to do about an NVML error from a clock or power-limit change."""
    if getattr(exc, "value", None) == ERROR_NO_PERMISSION:
        return f": changing {what} needs root or CAP_SYS_ADMIN"
    if getattr(exc, "value", None) == ERROR_NOT_SUPPORTED:
        return f": this GPU does not support {what}"
    return ""

"""The GPU backend abstraction: what every source of GPU readings (NVML, the simulator) provides.

A backend owns a fixed list of physical GPUs, chosen when it is created, and returns one reading per
GPU per call. Energy is the GPU's raw cumulative counter in mJ; a GPU without one reports ``None`` and
the sampler integrates power instead (``energy_source = "power_integration"``, flagged as estimated).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

# Re-exported for the backends: the wire format defines what a GPU's energy and power columns hold.
from wattwise_agent.wire import COMPONENT_GPU
from wattwise_agent.wire import ENERGY_COUNTER as ENERGY_COUNTER
from wattwise_agent.wire import POWER_AVERAGE as POWER_AVERAGE
from wattwise_agent.wire import POWER_INSTANT as POWER_INSTANT
from wattwise_agent.wire import POWER_INTEGRATION as POWER_INTEGRATION

if TYPE_CHECKING:
    from wattwise_agent.backends.clocks import GpuClocks
    from wattwise_agent.backends.power_limits import GpuPowerLimits


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine (no driver, no GPUs selected); the text says what to do."""


@dataclass(frozen=True)
class GpuInfo:
    """One physical GPU as the agent reports it. Keyed by UUID everywhere: indices are per-machine."""

    index: int
    uuid: str
    name: str
    energy_source: str  # ENERGY_COUNTER or POWER_INTEGRATION
    power_field: str  # POWER_INSTANT or POWER_AVERAGE: which NVML power reading power_mw holds
    architecture: str = "unknown"
    # MIG slices share the whole GPU's power and energy: the parent is reported once, flagged.
    mig_enabled: bool = False
    # "module" on superchips (GH200/GB200) where NVML only reports CPU + GPU module power.
    power_scope: str = "gpu"
    # What it measures (wattwise_agent.wire.COMPONENTS): a GPU, or a CPU package or its DRAM (RAPL).
    component: str = COMPONENT_GPU
    # The highest power limit it may be set to, in mW, when known: sent with its samples (``power_limit_mw``).
    power_limit_mw: int | None = None

    def open_run_entry(self) -> dict[str, Any]:
        """This GPU's entry in an ``open_run`` payload."""
        return {
            "uuid": self.uuid,
            "index": self.index,
            "name": self.name,
            "energy_source": self.energy_source,
            "power_field": self.power_field,
            "architecture": self.architecture,
            "mig_enabled": self.mig_enabled,
            "power_scope": self.power_scope,
            "component": self.component,
        }


@dataclass(frozen=True)
class Reading:
    """One reading of one GPU, in NVML's units."""

    energy_mj: int | None  # raw cumulative counter; None when the GPU has none
    power_mw: int
    sm_clock_mhz: int
    util_pct: int
    temp_c: int


class GpuBackend(ABC):
    """A source of GPU readings. ``read`` returns one entry per GPU in ``gpus`` order (None: no reading)."""

    name: ClassVar[str]
    simulated: ClassVar[bool] = False

    @property
    @abstractmethod
    def gpus(self) -> Sequence[GpuInfo]: ...

    @abstractmethod
    def read(self, t_ms: int) -> list[Reading | None]:
        """Read every GPU at ``t_ms`` (a real backend reads now and ignores it; the simulator uses it)."""

    def events(self, until_ms: int) -> list[dict[str, Any]]:
        """Events the backend itself knows of, up to ``until_ms`` (the simulator's step ends)."""
        return []

    def ground_truth_energy_j(self) -> dict[str, float] | None:
        """True energy per GPU UUID between its first and last reading, where the backend knows it."""
        return None

    def clocks(self) -> GpuClocks | None:
        """Clock control for this backend's GPUs, or None where it has none (the simulator).

        Only :class:`wattwise_agent.clock_guard.ClockActuator` may use it to change clocks.
        """
        return None

    def power_limits(self) -> GpuPowerLimits | None:
        """Power-limit control for this backend's GPUs, or None where it has none.

        Only :class:`wattwise_agent.power_guard.PowerLimitActuator` may use it to change limits.
        """
        return None

    def begin_computation(self, instruction: str) -> None:  # noqa: B027 - only emulated GPUs need telling
        """A computation (``forward``, ``backward``) starts on these GPUs: the profiler, the plan client and the
        Tracker's stages say so. A real GPU needs no telling; emulated GPUs (``backends.emulated``) time it."""

    def end_computation(self, instruction: str) -> None:  # noqa: B027 - only emulated GPUs need telling
        """The computation begun by ``begin_computation`` has finished on the host (emulated GPUs stretch it
        to the time their profile gives before returning)."""

    def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to release
        """Release the device library."""

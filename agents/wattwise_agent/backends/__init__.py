"""GPU backends: ``nvml`` for real NVIDIA GPUs, ``simulated`` for demos and tests."""

from wattwise_agent.backends.base import (
    ENERGY_COUNTER,
    POWER_AVERAGE,
    POWER_INSTANT,
    POWER_INTEGRATION,
    BackendUnavailable,
    GpuBackend,
    GpuInfo,
    Reading,
)

__all__ = [
    "ENERGY_COUNTER",
    "POWER_AVERAGE",
    "POWER_INSTANT",
    "POWER_INTEGRATION",
    "BackendUnavailable",
    "GpuBackend",
    "GpuInfo",
    "Reading",
]

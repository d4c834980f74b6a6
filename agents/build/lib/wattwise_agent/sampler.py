"""The sampler: one reading of every owned GPU (and, beside them, the node's CPU and DRAM) per tick, with
energy for GPUs that lack a counter.

For a GPU with the cumulative counter, ``energy_mj`` is the raw counter modulo ``wire.ENERGY_MODULUS_MJ``
(NVML's is unsigned 64-bit, the wire's signed; see ``wattwise_agent.wire.counter_step_mj``): the app takes
differences. For a GPU without one (``energy_source = "power_integration"``), the sampler keeps a running
trapezoid integral of power since its first reading and sends ``floor`` of it in the same column, so the
app treats both the same way and the flag says which figures are estimated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from wattwise_agent.backends.base import POWER_INTEGRATION, GpuBackend, GpuInfo, Reading
from wattwise_agent.wire import ENERGY_MODULUS_MJ


@dataclass(frozen=True)
class Sample:
    """One reading of one GPU, ready for the wire (all integers, NVML units)."""

    t_ms: int
    energy_mj: int
    power_mw: int
    sm_clock_mhz: int
    util_pct: int
    temp_c: int


class PowerIntegrator:
    """Running trapezoid integral of power, in mJ (mW × ms / 1000)."""

    def __init__(self) -> None:
        self.energy_mj = 0.0
        self._last: tuple[int, int] | None = None

    def add(self, t_ms: int, power_mw: int) -> int:
        if self._last is not None:
            last_t, last_p = self._last
            self.energy_mj += (last_p + power_mw) / 2 * (t_ms - last_t) / 1000
        self._last = (t_ms, power_mw)
        return math.floor(self.energy_mj)


class Sampler:
    """Reads the backend and returns one Sample (or None where the GPU gave no reading) per GPU.

    ``node_energy`` (e.g. :class:`wattwise_agent.backends.rapl.RaplBackend`) is read beside the GPUs, each
    tick, its devices after the GPUs in ``gpus``.
    """

    def __init__(self, backend: GpuBackend, node_energy: GpuBackend | None = None) -> None:
        self.backend = backend
        self._sources = [backend] if node_energy is None else [backend, node_energy]
        self.gpus: Sequence[GpuInfo] = [gpu for source in self._sources for gpu in source.gpus]
        self._integrators = {g.uuid: PowerIntegrator() for g in self.gpus if g.energy_source == POWER_INTEGRATION}
        self.samples_read = 0

    def sample(self, t_ms: int) -> list[Sample | None]:
        readings = [reading for source in self._sources for reading in source.read(t_ms)]
        out = [self._to_sample(gpu, reading, t_ms) for gpu, reading in zip(self.gpus, readings)]
        self.samples_read += sum(s is not None for s in out)
        return out

    def _to_sample(self, gpu: GpuInfo, reading: Reading | None, t_ms: int) -> Sample | None:
        if reading is None:
            return None
        integrator = self._integrators.get(gpu.uuid)
        if integrator is not None:
            energy_mj = integrator.add(t_ms, reading.power_mw)
        elif reading.energy_mj is None:
            return None  # a counter GPU whose counter read failed: skip, the next difference covers it
        else:
            energy_mj = reading.energy_mj % ENERGY_MODULUS_MJ
        return Sample(
            t_ms=t_ms,
            energy_mj=energy_mj,
            power_mw=max(reading.power_mw, 0),
            sm_clock_mhz=max(reading.sm_clock_mhz, 0),
            util_pct=min(max(reading.util_pct, 0), 100),
            temp_c=reading.temp_c,
        )

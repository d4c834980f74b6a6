"""Measurement windows over a GPU backend: the energy of a stretch of time, summed over a stage's GPUs.

As in Zeus's ``begin_window``/``end_window``: read every GPU at the start and at the end, and take
counter differences (a counter that steps back wrapped around or was reset, as
``wattwise_agent.wire.counter_step_mj`` says: never a negative energy). A GPU without the energy counter
(``power_integration``) is estimated as the mean of the two power readings times the window length, and
the window is flagged as estimated. A failed reading makes the window's energy unknown (None) rather than
wrong.

NVML's counter updates every 20–100 ms, so one short window is coarse; means over many windows are not
biased by it, which is how the profiler and the plan client use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wattwise_agent.backends.base import POWER_INTEGRATION, GpuBackend, GpuInfo
from wattwise_agent.clock import Clock, RealClock
from wattwise_agent.wire import counter_step_mj


@dataclass(frozen=True)
class MeterReading:
    """One reading of every GPU of the meter: raw counters (mJ), power (mW), SM clock (MHz)."""

    t_s: float  # the meter's timer, seconds
    energy_mj: tuple[int | None, ...]
    power_mw: tuple[int | None, ...]
    sm_clock_mhz: tuple[int | None, ...]


class EnergyMeter:
    """Reads a backend's GPUs and turns two readings into the energy between them, in J."""

    def __init__(
        self, backend: GpuBackend, *, clock: Clock | None = None, timer: Callable[[], float] = time.perf_counter
    ) -> None:
        self.backend = backend
        self.gpus: Sequence[GpuInfo] = list(backend.gpus)
        self._clock = clock or RealClock()
        self._timer = timer
        self.estimated = any(g.energy_source == POWER_INTEGRATION for g in self.gpus)

    def read(self) -> MeterReading:
        readings = self.backend.read(self._clock.now_ms())
        t_s = self._timer()
        return MeterReading(
            t_s=t_s,
            energy_mj=tuple(None if r is None else r.energy_mj for r in readings),
            power_mw=tuple(None if r is None else r.power_mw for r in readings),
            sm_clock_mhz=tuple(None if r is None else r.sm_clock_mhz for r in readings),
        )

    def energy_j(self, begin: MeterReading, end: MeterReading) -> float | None:
        """Energy of all GPUs from ``begin`` to ``end`` in J, or None if a reading is missing."""
        total_mj = 0.0
        for i, gpu in enumerate(self.gpus):
            if gpu.energy_source == POWER_INTEGRATION:
                p0, p1 = begin.power_mw[i], end.power_mw[i]
                if p0 is None or p1 is None:
                    return None
                total_mj += (p0 + p1) / 2 * max(end.t_s - begin.t_s, 0.0)  # mW × s = mJ
                continue
            e0, e1 = begin.energy_mj[i], end.energy_mj[i]
            if e0 is None or e1 is None:
                return None
            total_mj += counter_step_mj(e0, e1)
        return total_mj / 1000

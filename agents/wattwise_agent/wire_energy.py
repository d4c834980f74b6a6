"""How energy is counted between readings of a cumulative counter: one rule, on both sides.

The app's totals (``dashboard.telemetry.batch_store``) and the agent's own summary (``wattwise_agent.run_energy``)
count each interval's energy with these functions, so they agree to the mJ. ``wattwise_agent.wire`` re-exports them.
"""

from __future__ import annotations

import numpy as np

ENERGY_MODULUS_MJ = 2**63
"""Energy counters travel modulo 2**63. NVML's counter is an unsigned 64-bit count of mJ, but the wire's
columns and the app's are signed 64-bit integers, so the agent sends ``counter % 2**63`` (a counter that
passes 2**63, or wraps at 2**64, wraps at 2**63 on the wire: the same rule covers both)."""
MAX_WRAP_STEP_MJ = 2**32
"""A counter that steps back wrapped around only if, counted forwards modulo ``ENERGY_MODULUS_MJ``, it moved
at most this far (4.3 MJ: over an hour of a 1 kW GPU, more than any sampling interval holds), that is
from within this distance of the top to a small value. Any other step back is a reset (driver reload)."""

__all__ = [  # re-exported by wattwise_agent.wire
    "ENERGY_MODULUS_MJ",
    "MAX_WRAP_STEP_MJ",
    "counter_step_mj",
    "counter_steps_mj",
    "window_deltas_mj",
]


def window_deltas_mj(energy_mj: np.ndarray, prev_energy_mj: int | None) -> np.ndarray:
    """:meth:`wattwise_agent.wire.GpuWindow.energy_deltas_mj` of a window's ``energy_mj`` column (int64) and its previous reading:
    the app's totals and the agent's own summary (``wattwise_agent.run_energy``) both count energy so."""
    readings = energy_mj
    if prev_energy_mj is not None:
        readings = np.concatenate(([prev_energy_mj], readings))
    deltas = counter_steps_mj(readings)
    if prev_energy_mj is None:
        deltas = np.concatenate(([0], deltas))
    return deltas


def counter_step_mj(before: int, after: int) -> int:
    """The energy between two readings of a cumulative energy counter, in mJ: THE rule, on both sides.

    Readings are taken modulo ``ENERGY_MODULUS_MJ`` (the agent sends them so; a raw NVML value may be
    larger). Forwards, the difference. Backwards, the counter either wrapped around, when it went from
    near the top to a small value (counted forwards, modulo, it moved at most ``MAX_WRAP_STEP_MJ``): the
    distance counted forwards; or it was reset (driver reload): the new value, counted from zero, never a
    negative energy.
    """
    before, after = before % ENERGY_MODULUS_MJ, after % ENERGY_MODULUS_MJ
    if after >= before:
        return after - before
    forwards = after + ENERGY_MODULUS_MJ - before
    return forwards if forwards <= MAX_WRAP_STEP_MJ else after


def counter_steps_mj(readings: np.ndarray) -> np.ndarray:
    """:func:`counter_step_mj` between consecutive readings (an int64 array of wire values, each in
    ``[0, ENERGY_MODULUS_MJ)``): one value fewer than readings."""
    steps = np.diff(readings)
    for i in np.flatnonzero(steps < 0).tolist():  # rare: a reset or a wrap
        steps[i] = counter_step_mj(int(readings[i]), int(readings[i + 1]))
    return steps

"""How energy is counted between readings of a cumulative counter: one rule, on both sides.

The app's totals (``dashboard.telemetry.batch_store``) and the agent's own summary (``wattwise_agent.run_energy``)
count each interval's energy with these functions, so they agree to the mJ. ``wattwise_agent.wire`` re-exports them.

An interval counts what the counter says (:func:`counter_step_mj`: forwards the difference, a wrap the
distance forwards, a reset the new value) only when that is plausible: at most what the device could draw
at twice its power limit over the interval plus a second (:func:`max_interval_mj`). So a counter that steps
back is a reset only when it restarted near zero, and a jump no device can make counts nothing. Such an
interval counts 0 J and is reported (:class:`Implausible`), never silently dropped: the app records it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

ENERGY_MODULUS_MJ = 2**63
"""Energy counters travel modulo 2**63. NVML's counter is an unsigned 64-bit count of mJ, but the wire's
columns and the app's are signed 64-bit integers, so the agent sends ``counter % 2**63`` (a counter that
passes 2**63, or wraps at 2**64, wraps at 2**63 on the wire: the same rule covers both)."""
MAX_WRAP_STEP_MJ = 2**32
"""A counter that steps back wrapped around only if, counted forwards modulo ``ENERGY_MODULUS_MJ``, it moved
at most this far (4.3 MJ: over an hour of a 1 kW GPU, more than any sampling interval holds), that is
from within this distance of the top to a small value. Any other step back is a reset (driver reload)."""

DEFAULT_MAX_POWER_W = 2000.0
"""The power ceiling in W for a device whose entry gives no ``power_limit_mw``, unless ``WATTWISE_MAX_GPU_POWER_W``
says otherwise (:func:`max_power_w_from_env`): above any GPU made so far, far below what a broken counter reports."""
MAX_POWER_ENV = "WATTWISE_MAX_GPU_POWER_W"
"""The variable that sets that ceiling, read the same way by the app (``dashboard/settings.py``) and the agent."""
POWER_MARGIN = 2
"""How far above its power limit a device's interval may seem to draw (power limits are averages; readings jitter)."""
INTERVAL_SLACK_MS = 1000
"""Time added to every interval for the bound: readings are timestamped when read, not when the counter ticked."""

__all__ = [  # re-exported by wattwise_agent.wire
    "DEFAULT_MAX_POWER_W",
    "ENERGY_MODULUS_MJ",
    "INTERVAL_SLACK_MS",
    "MAX_POWER_ENV",
    "MAX_WRAP_STEP_MJ",
    "POWER_MARGIN",
    "Implausible",
    "WindowEnergy",
    "count_window_mj",
    "count_windows_mj",
    "counter_step_mj",
    "counter_steps_mj",
    "max_interval_mj",
    "max_power_w_from_env",
    "power_limit_w",
]


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
    """:func:`counter_step_mj` between consecutive readings along the last axis (an int64 array of wire values,
    each in ``[0, ENERGY_MODULUS_MJ)``; a 2-D array is one window a row): one value fewer than readings a row."""
    steps = np.diff(readings, axis=-1)
    for index in np.argwhere(steps < 0).tolist():  # rare: a reset or a wrap
        *row, i = index
        steps[(*row, i)] = counter_step_mj(int(readings[(*row, i)]), int(readings[(*row, i + 1)]))
    return steps


def max_interval_mj(interval_ms: np.ndarray, power_limit_w: float | np.ndarray) -> np.ndarray:
    """The most energy a device with this power limit can plausibly count over each interval, in mJ (W × ms);
    ``power_limit_w`` may be an array that broadcasts against ``interval_ms`` (one limit per window)."""
    return POWER_MARGIN * power_limit_w * (interval_ms + INTERVAL_SLACK_MS)


def max_power_w_from_env(environ: Mapping[str, str] | None = None) -> float:
    """The ceiling for devices without a power limit, as the app reads it: ``WATTWISE_MAX_GPU_POWER_W`` in W
    (unset or blank: :data:`DEFAULT_MAX_POWER_W`); anything but a number >= 1 is a ValueError naming it.

    The agent parses it itself (it imports none of the server), with the app's rule, so that on a machine
    where both run with the same environment the agent's summary counts what the app counts.
    """
    environ = os.environ if environ is None else environ
    value = environ.get(MAX_POWER_ENV)
    if value is None or value.strip() == "":
        return DEFAULT_MAX_POWER_W
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{MAX_POWER_ENV}={value!r} is not a number") from None
    if math.isnan(number) or number < 1.0:
        raise ValueError(f"{MAX_POWER_ENV}={value!r} must be a number >= 1.0")
    return number


def power_limit_w(power_limit_mw: int | None, ceiling_w: float) -> float:
    """The power limit the bound uses: the device's own when its entry gives it, else the configured ceiling."""
    return ceiling_w if power_limit_mw is None else power_limit_mw / 1000


@dataclass(frozen=True)
class Implausible:
    """An interval whose counter step no device can make: counted 0 J."""

    t_ms: int  # the reading that ends it
    interval_ms: int
    before_mj: int
    after_mj: int
    counted_mj: int  # what the counter rule alone would have counted
    limit_mj: int

    def describe(self) -> str:
        if self.after_mj < self.before_mj and self.counted_mj == self.after_mj:
            step = f"stepped back from {self.before_mj} to {self.after_mj} mJ, not a restart near zero"
        else:
            step = f"rose {self.counted_mj} mJ"
        return (f"the interval ending at {self.t_ms} ms ({self.interval_ms} ms): the counter {step}; "
                f"at most {self.limit_mj} mJ is plausible, so it counts 0 J")


@dataclass(frozen=True)
class WindowEnergy:
    """What a window counts: the energy of each interval ending at one of its readings, in mJ (the first is 0
    when the window has no previous reading), and the intervals counted 0 J as implausible."""

    deltas_mj: np.ndarray
    implausible: tuple[Implausible, ...] = ()


def count_window_mj(
    energy_mj: np.ndarray, t_ms: np.ndarray, prev: tuple[int, int] | None, limit_w: float
) -> WindowEnergy:
    """Count a window's intervals (``energy_mj`` and ``t_ms`` int64 columns, ``prev`` the stream's reading before
    them as (t_ms, energy_mj)) by the counter rule, each at most :func:`max_interval_mj` for ``limit_w``: one
    window of :func:`count_windows_mj`."""
    before = None if prev is None else np.array([prev], dtype=np.int64)
    deltas, implausible = count_windows_mj(energy_mj[None, :], t_ms[None, :], before, np.array([limit_w]))
    return WindowEnergy(deltas[0], implausible[0])


def count_windows_mj(
    energy_mj: np.ndarray, t_ms: np.ndarray, prev: np.ndarray | None, limit_w: np.ndarray
) -> tuple[np.ndarray, list[tuple[Implausible, ...]]]:
    """:func:`count_window_mj` for windows of equal length at once, one a row: ``energy_mj`` and ``t_ms``
    (windows × readings, int64), ``prev`` (windows × 2: t_ms, energy_mj) when every window has a previous reading
    or None when none has, ``limit_w`` one per window. Each window's deltas (a row of the array returned,
    readings long) and implausible intervals are what it counts alone: integer steps, and limits computed
    element by element with the same operations."""
    readings, times = energy_mj, t_ms
    if prev is not None:
        readings = np.concatenate((prev[:, 1:2], readings), axis=1)
        times = np.concatenate((prev[:, 0:1], times), axis=1)
    steps = counter_steps_mj(readings)
    implausible: list[list[Implausible]] = [[] for _ in range(readings.shape[0])]
    if steps.size:
        intervals = np.diff(times, axis=1)
        limits = max_interval_mj(intervals, np.asarray(limit_w, dtype=np.float64)[:, None])
        bad = np.argwhere(steps > limits)
        if bad.size:  # rare: a broken counter
            for row, i in bad.tolist():
                implausible[row].append(Implausible(
                    int(times[row, i + 1]), int(intervals[row, i]), int(readings[row, i]),
                    int(readings[row, i + 1]), int(steps[row, i]), int(limits[row, i])))
            steps[bad[:, 0], bad[:, 1]] = 0
    if prev is None:
        steps = np.concatenate((np.zeros((steps.shape[0], 1), dtype=steps.dtype), steps), axis=1)
    return steps, [tuple(found) for found in implausible]

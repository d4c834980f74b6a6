"""How a window's sample columns are packed into the database: little-endian fixed-width integer arrays.

Timestamps are stored as offsets from the window's first sample, so a sample costs 22 bytes whatever
the window length: t 4 + energy counter 8 + power 4 + SM clock 2 + utilisation 2 + temperature 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

DTYPES: dict[str, str] = {
    "t_offset_ms": "<u4",
    "energy_mj": "<i8",
    "power_mw": "<i4",
    "sm_clock_mhz": "<i2",
    "util_pct": "<i2",
    "temp_c": "<i2",
}


def pack(name: str, values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype=DTYPES[name]).tobytes()


def unpack(name: str, blob: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(blob), dtype=DTYPES[name])


@dataclass(frozen=True)
class WindowArrays:
    """A stored window decoded back to arrays (absolute timestamps in ms)."""

    t_ms: np.ndarray
    energy_mj: np.ndarray
    power_mw: np.ndarray
    sm_clock_mhz: np.ndarray
    util_pct: np.ndarray
    temp_c: np.ndarray


class StoredWindow(Protocol):
    first_ms: int
    t_offset_ms: bytes | memoryview
    energy_mj: bytes | memoryview
    power_mw: bytes | memoryview
    sm_clock_mhz: bytes | memoryview
    util_pct: bytes | memoryview
    temp_c: bytes | memoryview


def decode_window(window: StoredWindow) -> WindowArrays:
    """Decode a SampleWindow row (or anything with the same attributes)."""
    return WindowArrays(
        t_ms=unpack("t_offset_ms", window.t_offset_ms).astype(np.int64) + int(window.first_ms),
        energy_mj=unpack("energy_mj", window.energy_mj),
        power_mw=unpack("power_mw", window.power_mw),
        sm_clock_mhz=unpack("sm_clock_mhz", window.sm_clock_mhz),
        util_pct=unpack("util_pct", window.util_pct),
        temp_c=unpack("temp_c", window.temp_c),
    )

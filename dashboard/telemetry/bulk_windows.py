"""Ingest's per-batch arithmetic over whole arrays of windows: what the bulk path stores, computed at once.

``dashboard.telemetry.ingest`` computes a window's energy, sums and minute rollups from that window's arrays, and
folds them into running totals one batch at a time. Here the same numbers come from a GPU's readings
over a stretch of many windows, vectorised, with one rule kept throughout: every float is produced by
the same numpy operation, on the same values, in the same order as ingest's, so the results are equal
bit for bit (``tests/dashboard/telemetry/test_bulk_load.py`` checks it). Integer sums are exact in any order, so
only the float sums need care:

* a window's power total is ``power_w.sum()`` and its share of a minute ``np.add.reduceat``, and the two
  add in different orders; windows of equal length are reduced together as the rows of a 2-D array,
  which numpy reduces row by row exactly as it reduces each window alone;
* running totals add window after window, as ingest's additive upserts do.

It also writes the two encodings a window leaves behind: its encoded columns (``dashboard.telemetry.columns``) and
the text of the batch body an agent would have signed, whose digest the receipt keeps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from dashboard.telemetry import columns
from dashboard.telemetry.window_figures import MINUTE_FOLDS
from planner.units import MILLIJOULES_PER_J, MILLIWATTS_PER_W, MS_PER_MINUTE
from wattwise_agent import wire


@dataclass(frozen=True)
class GpuSamples:
    """One GPU's readings over a stretch of time: integer arrays in the wire's units, time increasing."""

    t_ms: np.ndarray
    energy_mj: np.ndarray  # the raw cumulative counter
    power_mw: np.ndarray
    sm_clock_mhz: np.ndarray
    util_pct: np.ndarray
    temp_c: np.ndarray

    @property
    def samples(self) -> int:
        return int(self.t_ms.size)

    def column(self, name: str) -> np.ndarray:
        return getattr(self, name)


@dataclass(frozen=True)
class GpuWindows:
    """One GPU's windows within a stretch of readings, with every figure ingest derives from them."""

    readings: GpuSamples
    window: np.ndarray  # window number (start // window_ms) of each window
    starts: np.ndarray  # index of each window's first reading
    ends: np.ndarray
    prev: list[tuple[int, int] | None]  # the reading before each window: (t_ms, energy_mj)
    energy_j: np.ndarray  # SampleWindow.energy_j
    power_total_w: np.ndarray  # each window's power sum, as RunGpu.power_sum_w adds it
    minutes: dict[str, np.ndarray]  # GpuMinute columns, one entry per minute, in time order

    @property
    def count(self) -> int:
        return int(self.starts.size)


def deltas_mj(energy_mj: np.ndarray, prev: tuple[int, int] | None) -> np.ndarray:
    """Energy of each interval ending at a reading (``wattwise_agent.wire.GpuWindow.energy_deltas_mj``, run-wide).

    The first interval starts at the previous reading; a counter that steps back wrapped around or was
    reset (``wattwise_agent.wire.counter_step_mj``); a GPU's very first reading counts nothing.
    """
    readings = energy_mj if prev is None else np.concatenate(([prev[1]], energy_mj))
    deltas = wire.counter_steps_mj(readings)
    return np.concatenate(([0], deltas)) if prev is None else deltas


def cut(readings: GpuSamples, number: np.ndarray, prev: tuple[int, int] | None) -> GpuWindows:
    """Split readings into windows by window number (nondecreasing) and compute what ingest stores."""
    starts = np.concatenate(([0], np.flatnonzero(np.diff(number)) + 1))
    ends = np.append(starts[1:], readings.samples)
    deltas = deltas_mj(readings.energy_mj, prev)
    power_w = readings.power_mw / MILLIWATTS_PER_W
    # Integer sums are exact; dividing afterwards matches ingest, which divides float(deltas.sum()).
    energy_j = np.add.reduceat(deltas, starts) / MILLIJOULES_PER_J
    power = _window_power(power_w, starts, ends)
    t, e = readings.t_ms, readings.energy_mj
    before = [prev, *zip(t[starts[1:] - 1].tolist(), e[starts[1:] - 1].tolist(), strict=True)]
    minutes = _minutes(readings, starts, ends, deltas, power_w, energy_j, power)
    return GpuWindows(readings, number[starts], starts, ends, before, energy_j, power["total"], minutes)


def add_in_order(total: float, values: np.ndarray) -> float:
    """``total`` plus each value in turn, as successive additive upserts add them (accumulate is sequential)."""
    return float(np.add.accumulate(np.concatenate(([total], values)))[-1])


def _window_power(power_w: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> dict[str, np.ndarray]:
    """Per window: the total as ``power_w.sum()`` gives it, its share as ``np.add.reduceat`` does, min, max."""
    lengths = ends - starts
    out = {key: np.empty(starts.size) for key in ("total", "reduced", "low", "high")}
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        block = power_w[starts[rows, None] + np.arange(length)]
        out["total"][rows] = block.sum(axis=1)
        out["reduced"][rows] = np.add.reduceat(block, [0], axis=1)[:, 0]
        out["low"][rows] = block.min(axis=1)
        out["high"][rows] = block.max(axis=1)
    return out


def _minutes(
    r: GpuSamples, starts: np.ndarray, ends: np.ndarray, deltas: np.ndarray, power_w: np.ndarray,
    energy_j: np.ndarray, power: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Each window's part of its minute (ingest's ``_upsert_minutes``), then the parts added up by minute."""
    first_minute = r.t_ms[starts] // MS_PER_MINUTE * MS_PER_MINUTE
    parts = {
        "minute_ms": first_minute, "window": np.arange(starts.size), "samples": ends - starts,
        "energy_j": energy_j, "power_sum_w": power["reduced"], "power_min_w": power["low"],
        "power_max_w": power["high"],
        **{column: fold.reduceat(getattr(r, reading), starts) for column, reading, fold in MINUTE_FOLDS},
    }
    spanning = np.flatnonzero(r.t_ms[ends - 1] // MS_PER_MINUTE * MS_PER_MINUTE != first_minute)
    if spanning.size:
        # A window across a minute boundary (only a final reading on a boundary makes one): split it
        # by minute as ingest does, and put its parts where the window was.
        keep = np.ones(starts.size, bool)
        keep[spanning] = False
        split = [_split(int(j), r, int(starts[j]), int(ends[j]), deltas, power_w) for j in spanning]
        parts = {k: np.concatenate([v[keep], *(s[k] for s in split)]) for k, v in parts.items()}
        order = np.argsort(parts["window"], kind="stable")
        parts = {k: v[order] for k, v in parts.items()}
    return _fold(parts)


def _split(j: int, r: GpuSamples, start: int, end: int, deltas: np.ndarray, power_w: np.ndarray) -> dict[str, Any]:
    # Fresh arrays, as ingest's window arrays are.
    d, p = deltas[start:end].copy(), power_w[start:end].copy()
    minute = r.t_ms[start:end] // MS_PER_MINUTE * MS_PER_MINUTE
    keys, starts = np.unique(minute, return_index=True)
    return {
        "minute_ms": keys, "window": np.full(keys.size, j), "samples": np.diff(np.append(starts, minute.size)),
        "energy_j": np.add.reduceat(d, starts) / MILLIJOULES_PER_J, "power_sum_w": np.add.reduceat(p, starts),
        "power_min_w": np.minimum.reduceat(p, starts), "power_max_w": np.maximum.reduceat(p, starts),
        **{column: fold.reduceat(getattr(r, reading)[start:end], starts) for column, reading, fold in MINUTE_FOLDS},
    }


def _fold(parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add up each minute's parts in time order: the n-th part of every minute in the n-th pass."""
    minute = parts["minute_ms"]
    keys, first, inverse = np.unique(minute, return_index=True, return_inverse=True)
    rank = np.arange(minute.size) - first[inverse]
    energy, power_sum = np.zeros(keys.size), np.zeros(keys.size)
    for n in range(int(rank.max()) + 1):
        now = rank == n
        energy[inverse[now]] += parts["energy_j"][now]
        power_sum[inverse[now]] += parts["power_sum_w"][now]
    return {
        "minute_ms": keys, "samples": np.add.reduceat(parts["samples"], first), "energy_j": energy,
        "power_sum_w": power_sum, "power_min_w": np.minimum.reduceat(parts["power_min_w"], first),
        "power_max_w": np.maximum.reduceat(parts["power_max_w"], first),
        # Sums of whole numbers are exact in any order, as extremes are; ingest stores them as floats.
        **{column: fold.reduceat(parts[column], first).astype(np.float64) for column, _, fold in MINUTE_FOLDS},
    }


def close_on_final_reading(readings: list[GpuSamples], numbers: list[np.ndarray], window_ms: int) -> bool:
    """Move a node's final reading into the window it ends, as the batcher does; say whether it did.

    The batcher puts a final reading taken exactly at the open window's end into that window rather than
    opening a new one. ``numbers`` (one array per GPU) are changed in place. Returns False also when the
    window it would close lies before these readings (the caller decides whether that is an error).
    """
    last = max(int(r.t_ms[-1]) for r in readings)
    if last % window_ms:
        return False
    earlier = [int(r.t_ms[-2]) if r.t_ms[-1] == last else int(r.t_ms[-1])
               for r in readings if r.t_ms.size > 1 or r.t_ms[-1] != last]
    if not earlier or max(earlier) // window_ms != last // window_ms - 1:
        return False
    for r, number in zip(readings, numbers, strict=True):
        if r.t_ms[-1] == last:
            number[-1] -= 1
    return True


def window_blobs(w: GpuWindows) -> list[bytes]:
    """Each window's encoded columns, as ``dashboard.telemetry.ingest`` encodes them with ``dashboard.telemetry.columns``.

    Windows of equal length are encoded together (``columns.encode_many``): the same bytes, fewer calls.
    """
    r, starts, ends = w.readings, w.starts, w.ends
    lengths = ends - starts
    out: list[bytes] = [b""] * w.count
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        index = starts[rows, None] + np.arange(length)
        blobs = columns.encode_many({
            name: r.t_ms[index] - r.t_ms[starts[rows]][:, None] if name == "t_offset_ms" else r.column(name)[index]
            for name in columns.NAMES
        })
        for row, blob in zip(rows.tolist(), blobs, strict=True):
            out[row] = blob
    return out


def decimal_text(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Integers as ASCII decimal text, each followed by a comma, and the offset where each one starts.

    What ``json.dumps`` writes for each, without a Python call per number: digits for all values at once,
    laid out in a (values × columns) byte grid, then read back row by row keeping only the used cells.
    Value i is ``text[offsets[i]:offsets[i + 1] - 1]``; a run of them is one slice.
    """
    negative = values < 0
    magnitude = np.abs(values).astype(np.uint64)
    width = len(str(int(magnitude.max()))) if values.size else 1
    cells = np.empty((values.size, width + 2), np.uint8)  # sign or padding, digits, comma
    rest = magnitude.copy()
    for k in range(width):
        cells[:, width - k] = (rest % np.uint64(10)).astype(np.uint8) + ord("0")
        rest //= np.uint64(10)
    digits = np.ones(values.size, np.int64)
    for k in range(1, width):
        digits += magnitude >= np.uint64(10**k)
    cells[:, -1] = ord(",")
    cells[negative, width - digits[negative]] = ord("-")
    used = np.arange(width + 2)[None, :] >= (width + 1 - digits - negative)[:, None]
    offsets = np.concatenate(([0], np.cumsum(digits + negative + 1)))
    return cells[used].tobytes(), offsets


class BodyText:
    """One GPU's entries in batch bodies: byte for byte what the agent's ``wire.seal`` signs.

    Each column is spelled once per stretch of readings (``decimal_text``); a window's array is a slice.
    """

    def __init__(self, w: GpuWindows, uuid: str, index: int, name: str, energy_source: str, power_field: str):
        self.w = w
        self.head = (f'{{"uuid":{json.dumps(uuid)},"index":{int(index)},"name":{json.dumps(name)},'
                     f'"energy_source":{json.dumps(energy_source)},"power_field":{json.dumps(power_field)},').encode()
        self.text = [(f'"{key}":['.encode(), *decimal_text(w.readings.column(key))) for key in wire.SAMPLE_COLUMNS]
        self.starts, self.ends = w.starts.tolist(), w.ends.tolist()

    def entry(self, j: int) -> bytes:
        """Window ``j``'s entry in ``gpus`` (the key order of ``wattwise_agent.wire.gpu_payload``)."""
        s, e, prev = self.starts[j], self.ends[j], self.w.prev[j]
        parts = [self.head, f'"prev_t_ms":{prev[0]},"prev_energy_mj":{prev[1]},'.encode() if prev else
                 b'"prev_t_ms":null,"prev_energy_mj":null,']
        for n, (key, text, offsets) in enumerate(self.text):
            parts += [b"," if n else b"", key, text[offsets[s]:offsets[e] - 1], b"]"]
        parts.append(b"}")
        return b"".join(parts)


def batch_body(
    run: str, stream: str, seq: int, simulated: bool, start_ms: int, end_ms: int, entries: list[bytes]
) -> bytes:
    """A batch payload's body: ``json.dumps(payload, separators=(",", ":"))`` in the batcher's key order."""
    head = (f'{{"run":{json.dumps(run)},"stream":{json.dumps(stream)},"seq":{seq},'
            f'"simulated":{"true" if simulated else "false"},"window_start_ms":{start_ms},'
            f'"window_end_ms":{end_ms},"gpus":[').encode()
    return head + b",".join(entries) + b'],"events":[]}'

"""How a window's sample columns are stored: one losslessly encoded blob per window (``SampleWindow.readings``).

A window holds six integer columns, exactly as the agent sent them: timestamps (stored as offsets from the
window's first reading, ``SampleWindow.first_ms``), the energy counter, power, SM clock, utilisation and
temperature. Raw, they cost 22 bytes a sample (t 4 + energy counter 8 + power 4 + clock 2 + utilisation 2
+ temperature 2), and a window's row (about 1.1 kB at 10 Hz over 5 s) sits under PostgreSQL's 2 kB TOAST
threshold, so PostgreSQL never compresses it. Encoded, the same readings take a third of that or less.

The encoding (version 1), column by column, all in wrapping 64-bit integer arithmetic (so any int64 values,
even a counter jumping across its whole range, come back exactly):

1. subtract the column's first value (its *base*);
2. take differences ``ORDERS[name]`` times: twice (delta of delta) for the timestamps and the energy
   counter, which grow steadily, so their second differences are about zero; once for the rest;
3. zigzag the result (0, -1, 1, -2 … → 0, 1, 2, 3 …), so small changes either way have small codes;
4. keep only as many of each code's little-endian bytes as the column's largest code needs (its *width*),
   laid out byte plane by byte plane (all first bytes, then all second bytes: a *byte shuffle*), so the
   planes of high bytes, mostly zeros, are long runs.

The blob is one version byte, then a Zstandard frame (``zstandard``; level ``ZSTD_LEVEL``) of: the sample
count (u32), the six widths (u8 each), the six bases (i64 each), then each column's byte planes in
``DTYPES`` order. Every reader goes through ``decode`` (or ``decode_window`` for a row), which can leave
out the columns a page does not need.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import zstandard

# Each column as decoded: the dtype it has always had (values keep to the wire's ranges).
DTYPES: dict[str, str] = {
    "t_offset_ms": "<u4",
    "energy_mj": "<i8",
    "power_mw": "<i4",
    "sm_clock_mhz": "<i2",
    "util_pct": "<i2",
    "temp_c": "<i2",
}
NAMES: tuple[str, ...] = tuple(DTYPES)
# How many times each column is differenced before its codes are stored (see the module docstring).
ORDERS: dict[str, int] = {"t_offset_ms": 2, "energy_mj": 2, "power_mw": 1, "sm_clock_mhz": 1, "util_pct": 1, "temp_c": 1}
VERSION = 1
ZSTD_LEVEL = 3
_HEAD = struct.Struct(f"<I{len(NAMES)}B{len(NAMES)}q")  # samples, widths, bases
# The same header with the bases read back unsigned, as the decoder's wrapping sums take them.
_HEAD_UNSIGNED = struct.Struct(f"<I{len(NAMES)}B{len(NAMES)}Q")
_PREFIX = bytes([VERSION])
# The columns differenced twice come first, so that one slice takes them.
_TWICE = sum(order == 2 for order in ORDERS.values())
assert all(ORDERS[name] == (2 if i < _TWICE else 1) for i, name in enumerate(NAMES)), "ORDERS: 2s first, then 1s"
# The smallest code that needs k + 1 bytes, for k = 0 … 7: a code's width is how many of these it reaches.
_BYTE_STEPS = np.array([1 << (8 * k) for k in range(8)], dtype=np.uint64)
_PLANE = np.arange(8)
_compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=False, write_content_size=True)
_decompressor = zstandard.ZstdDecompressor()


class CorruptWindow(ValueError):
    """A stored blob that is not an encoded window this code can read."""


def encode(columns: Mapping[str, np.ndarray]) -> bytes:
    """One window's six columns (equal lengths; timestamps as offsets) as one encoded blob."""
    return encode_many({name: np.asarray(columns[name]).reshape(1, -1) for name in NAMES})[0]


def encode_many(columns: Mapping[str, np.ndarray]) -> list[bytes]:
    """Several windows of equal length at once: each column a (windows × samples) array. One blob per
    window, the very bytes ``encode`` gives for it alone (the bulk loader relies on that)."""
    values = np.stack([np.asarray(columns[name], dtype=np.int64) for name in NAMES], axis=1).view(np.uint64)
    count, _, n = values.shape
    bases = values[:, :, :1] if n else np.zeros((count, len(NAMES), 1), np.uint64)
    codes = values - bases  # wraps, as every step here does: the decoder's sums wrap back
    codes[:, :, 1:] = codes[:, :, 1:] - codes[:, :, :-1]
    twice = codes[:, :_TWICE]
    twice[:, :, 1:] = twice[:, :, 1:] - twice[:, :, :-1]
    signed = codes.view(np.int64)
    codes = ((signed << 1) ^ (signed >> 63)).view(np.uint64)  # zigzag
    widths = (codes.max(axis=2, initial=0)[:, :, None] >= _BYTE_STEPS).sum(axis=2)  # (windows, columns)
    planes = codes.view(np.uint8).reshape(count, len(NAMES), n, 8).transpose(0, 1, 3, 2)
    heads = [_HEAD.pack(n, *w, *b) for w, b in zip(widths.tolist(), bases[:, :, 0].view(np.int64).tolist(), strict=True)]
    kept = planes[widths[:, :, None] > _PLANE]  # every window's kept planes, window after window: one gather
    sizes = widths.sum(axis=1)
    ends = np.cumsum(sizes)
    return [
        _PREFIX + _compressor.compress(heads[i] + kept[start:end].tobytes())
        for i, (start, end) in enumerate(zip((ends - sizes).tolist(), ends.tolist(), strict=True))
    ]


def encode_each(windows: Sequence[Mapping[str, np.ndarray]]) -> list[bytes]:
    """Each window's blob, windows of equal length encoded together (``encode_many``)."""
    lengths = [len(window["t_offset_ms"]) for window in windows]
    out: list[bytes] = [b""] * len(windows)
    for n in set(lengths):
        group = [i for i, length in enumerate(lengths) if length == n]
        # One concatenation a column: the windows of the group as rows (np.stack's result, at a third of its cost).
        blobs = encode_many({name: np.concatenate([np.asarray(windows[i][name]) for i in group]).reshape(len(group), n)
                             for name in NAMES})
        for i, blob in zip(group, blobs, strict=True):
            out[i] = blob
    return out


def decode(blob: bytes | memoryview, names: Iterable[str] = NAMES) -> dict[str, np.ndarray]:
    """The columns ``names`` of one encoded window, each with its ``DTYPES`` dtype.

    Raises ``CorruptWindow`` for anything ``encode`` did not write (another version, a cut blob).
    """
    return decode_many([blob], names)


def decode_many(blobs: Sequence[bytes | memoryview], names: Iterable[str] = NAMES) -> dict[str, np.ndarray]:
    """Several windows' columns ``names`` joined end to end (one array per column, windows in the given
    order). Windows of equal length are decoded together."""
    names = tuple(names)
    rows = [NAMES.index(name) for name in names]
    parsed = [_parse(blob) for blob in blobs]
    counts = np.array([p[0] for p in parsed], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    out = {name: np.empty(int(offsets[-1]), DTYPES[name]) for name in names}
    for n in np.unique(counts).tolist():
        group = np.flatnonzero(counts == n)
        members = [parsed[k] for k in group.tolist()]
        planes = np.zeros((group.size, len(NAMES), 8, n), np.uint8)
        # Every window's kept planes at once: the mask's order (window, column, plane) is the bodies' order.
        kept = np.array([p[1] for p in members], dtype=np.int64)[:, :, None] > _PLANE
        planes[kept] = np.frombuffer(b"".join(p[3] for p in members), np.uint8).reshape(int(kept.sum()), n)
        bases = np.array([p[2] for p in members], dtype=np.uint64).reshape(group.size, len(NAMES), 1)
        codes = np.ascontiguousarray(planes.transpose(0, 1, 3, 2)).view(np.uint64)[..., 0]
        values = (codes >> np.uint64(1)) ^ (np.uint64(0) - (codes & np.uint64(1)))  # un-zigzag
        np.cumsum(values, axis=2, dtype=np.uint64, out=values)
        np.cumsum(values[:, :_TWICE], axis=2, dtype=np.uint64, out=values[:, :_TWICE])
        values += bases
        where = (offsets[group][:, None] + np.arange(n)).ravel()
        for name, row in zip(names, rows, strict=True):
            out[name][where] = values[:, row].view(np.int64).ravel()
    return out


def _parse(blob: bytes | memoryview) -> tuple[int, tuple[int, ...], tuple[int, ...], bytes]:
    """An encoded window's sample count, widths, bases (as uint64) and byte planes (plain Python: called once a
    window, where numpy's per-call cost on six numbers would be most of it)."""
    data = bytes(blob)
    if data[:1] != _PREFIX:
        raise CorruptWindow(f"not an encoded window of version {VERSION} (first byte {data[:1]!r})")
    try:
        payload = _decompressor.decompress(data[1:])
    except zstandard.ZstdError as error:
        raise CorruptWindow(f"encoded window: {error}") from error
    if len(payload) < _HEAD.size:
        raise CorruptWindow("encoded window: header cut short")
    head = _HEAD_UNSIGNED.unpack_from(payload)
    n, widths = head[0], head[1:1 + len(NAMES)]
    if max(widths) > 8 or len(payload) != _HEAD.size + sum(widths) * n:
        raise CorruptWindow(f"encoded window: {len(payload)} bytes do not hold {n} samples of widths {list(widths)}")
    return n, widths, head[1 + len(NAMES):], payload[_HEAD.size:]


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
    readings: bytes | memoryview


def decode_window(window: StoredWindow) -> WindowArrays:
    """Decode a SampleWindow row (or anything with the same attributes)."""
    columns = decode(window.readings)
    return WindowArrays(
        t_ms=columns.pop("t_offset_ms").astype(np.int64) + int(window.first_ms), **columns
    )

"""Each GPU counted once: a window counts only the time that no other agent stream's stored windows cover.

Several agent streams can read one GPU over the same time (every rank of an 8-process ``torchrun`` job
opening a tracker without ``gpus=``). Each stream's windows are stored as sent, but the GPU's energy is
what its counter says over the *union* of the time the streams covered, never their sum:

* A window covers the time from its stream's previous reading (``prev_t_ms``; its first reading when it
  has none) to its last reading, as the intervals between consecutive readings whose counter
  differences are its energy: ``(prev, t0], (t0, t1], …``.
* When it is stored, each interval counts only its energy outside the time other streams' windows,
  stored before it, already cover. First come, first counted: every instant is counted by the first
  window stored that covers it, so the total is the union's energy whatever order windows arrive in.
* An interval partly covered: where the covered time begins and ends, the other stream read the counter
  (the first and last readings of its windows), and every process reads the same counter of a GPU, so
  the uncovered part's energy is a difference of readings: exact. Where that cannot be (a GPU without a
  counter, whose "counter" is each agent's own integral of power, or readings that do not fit between
  this interval's own, as when one process simulated a reset the others did not), the interval counts
  pro rata: power taken as even within it, an error of at most the energy of one sampling interval per
  place where counting passes from one stream to another.
* The time read by more than one stream at once is added up as ``RunGpu.overlap_ms`` (newly covered
  twice or more, so three streams over ten minutes still make ten minutes), and ``RunGpu.streams`` counts
  the streams: pages flag the GPU.

The common case costs nothing: while one stream writes a GPU, ingest's upsert of the run's GPU row says
so (``RunGpu.first_stream``, ``shared``) and the window is stored as it is. Only once a second stream has
written it does ingest come here, after that upsert, which holds the row's lock until the batch commits:
two batches of one GPU are counted one after the other, each seeing what the other stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.db import connection

from dashboard.telemetry import columns
from dashboard.telemetry.models import BatchReceipt, RunGpu, SampleWindow
from dashboard.telemetry.windows import TimeRange
from wattwise_agent.wire import GpuWindow, counter_step_mj

Spans = tuple[np.ndarray, np.ndarray]
"""Disjoint stretches of time, sorted: their starts and ends (epoch ms, as float64: exact below 2**53)."""


@dataclass(frozen=True)
class Covered:
    """The time one stored window covers, with the counter readings at its ends."""

    stream: str
    from_ms: int  # its stream's previous reading (its first, when it has none)
    to_ms: int  # its last reading
    from_mj: int
    to_mj: int


@dataclass(frozen=True)
class Counted:
    """What one window of a GPU that several streams read counts."""

    deltas_mj: np.ndarray  # each interval's energy outside what other streams covered (float64)
    overlap_ms: int  # time this window adds to what more than one stream read at once


def intervals_ms(gpu: GpuWindow) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of the interval each of ``gpu.energy_deltas_mj()`` covers; a window with no previous
    reading starts with an empty interval at its first reading (it counts nothing)."""
    t_ms = gpu.t_ms
    first = t_ms[0] if gpu.prev_t_ms is None else gpu.prev_t_ms
    return np.concatenate(([first], t_ms[:-1])), t_ms


def union(starts: Iterable[float], ends: Iterable[float]) -> Spans:
    """The stretches covered by any of the intervals ``[start, end]``; empty intervals cover nothing."""
    lo, hi = np.asarray(list(starts), dtype=np.float64), np.asarray(list(ends), dtype=np.float64)
    keep = hi > lo
    lo, hi = lo[keep], hi[keep]
    if not lo.size:
        return lo, hi
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], np.maximum.accumulate(hi[order])
    # A stretch ends where the next interval starts after everything before it has ended.
    breaks = np.flatnonzero(lo[1:] > hi[:-1])
    return lo[np.concatenate(([0], breaks + 1))], hi[np.append(breaks, lo.size - 1)]


def at_least_twice(per_stream: Sequence[Spans]) -> Spans:
    """The stretches that two or more of the streams cover (each stream's spans already disjoint)."""
    if len(per_stream) < 2:
        return np.zeros(0), np.zeros(0)
    points = np.concatenate([np.concatenate((lo, hi)) for lo, hi in per_stream])
    change = np.concatenate([np.concatenate((np.ones(lo.size), -np.ones(hi.size))) for lo, hi in per_stream])
    order = np.lexsort((change, points))  # at one instant, ends before starts: touching is not overlapping
    points, depth = points[order], np.cumsum(change[order])
    keep = depth[:-1] >= 2
    return union(points[:-1][keep], points[1:][keep])


def covered_ms(spans: Spans, t_ms: np.ndarray) -> np.ndarray:
    """For each time, how much of the spans lies at or before it (piecewise linear in time)."""
    lo, hi = spans
    if not lo.size:
        return np.zeros(np.shape(t_ms))
    before = np.concatenate(([0.0], np.cumsum(hi - lo)[:-1]))
    knots = np.column_stack((lo, hi)).ravel()
    values = np.column_stack((before, before + hi - lo)).ravel()
    return np.interp(np.asarray(t_ms, dtype=np.float64), knots, values)


def _stretches(others: Sequence[Covered]) -> list[Covered]:
    """The union of the windows' time as disjoint stretches in time order, each with the readings at its
    ends (those of the windows that start and end it)."""
    merged: list[Covered] = []
    for w in sorted((w for w in others if w.to_ms > w.from_ms), key=lambda w: w.from_ms):
        last = merged[-1] if merged else None
        if last is not None and w.from_ms <= last.to_ms:
            if w.to_ms > last.to_ms:
                merged[-1] = Covered(last.stream, last.from_ms, w.to_ms, last.from_mj, w.to_mj)
        else:
            merged.append(w)
    return merged


def _uncovered_mj(a_ms: int, a_mj: int, b_ms: int, b_mj: int, stretches: Sequence[Covered]) -> int:
    """Energy of the parts of ``(a, b]`` outside the stretches, from the readings at their ends."""
    energy, at_ms, at_mj = 0, a_ms, a_mj
    for s in stretches:
        if s.to_ms <= at_ms or s.from_ms >= b_ms:
            continue
        if s.from_ms > at_ms:
            energy += counter_step_mj(at_mj, s.from_mj)
        if s.to_ms >= b_ms:
            return energy
        at_ms, at_mj = s.to_ms, s.to_mj
    return energy + counter_step_mj(at_mj, b_mj)


def count_once(gpu: GpuWindow, deltas_mj: np.ndarray, others: Sequence[Covered], *, exact: bool) -> Counted:
    """What a window counts, given what other streams' stored windows cover. ``exact``: the GPU has an
    energy counter, so other streams' readings can bound the uncovered parts of partly covered intervals."""
    starts, ends = intervals_ms(gpu)
    by_stream: dict[str, tuple[list[int], list[int]]] = {}
    for w in others:
        entry = by_stream.setdefault(w.stream, ([], []))
        entry[0].append(w.from_ms)
        entry[1].append(w.to_ms)
    per_stream = [union(lo, hi) for lo, hi in by_stream.values()]
    once = union([w.from_ms for w in others], [w.to_ms for w in others])
    twice = at_least_twice(per_stream)
    lengths = (ends - starts).astype(np.float64)
    covered = covered_ms(once, ends) - covered_ms(once, starts)
    share = np.clip(np.divide(covered, lengths, out=np.zeros_like(lengths), where=lengths > 0), 0.0, 1.0)
    counted = deltas_mj * (1.0 - share)
    partly = np.flatnonzero((share > 0) & (share < 1))
    if exact and partly.size:
        stretches = _stretches(others)
        readings = gpu.energy_mj if gpu.prev_energy_mj is None else np.concatenate(([gpu.prev_energy_mj], gpu.energy_mj))
        offset = 0 if gpu.prev_energy_mj is not None else -1  # interval k runs from reading k + offset to k + offset + 1
        for k in partly.tolist():
            a_mj, b_mj = int(readings[k + offset]), int(readings[k + offset + 1])
            energy = _uncovered_mj(int(starts[k]), a_mj, int(ends[k]), b_mj, stretches)
            if 0 <= energy <= deltas_mj[k]:  # readings that fit between this interval's own: the same counter
                counted[k] = energy
    window = np.array([starts[0], ends[-1]])
    newly_twice = np.diff(covered_ms(once, window))[0] - np.diff(covered_ms(twice, window))[0]
    return Counted(counted, round(float(newly_twice)))


# --- what is stored -------------------------------------------------------------------------------


def covering(run_gpu_ids: Sequence[int], stream: str, span: TimeRange, window_ms: int) -> dict[int, list[Covered]]:
    """What other streams' stored windows of these GPUs cover within ``span``, per GPU.

    No window covers more than ``window_ms`` (the longest these GPUs have seen, ``RunGpu.max_window_ms``),
    so every window that reaches into the span starts within that of it: one bounded range scan of the
    ``(run_gpu, first_ms)`` index, cheaper here than ``windows.reach_back_ms``'s probes per stream (the
    pages' way, for ranges of any length), which would cost most of a shared batch's time.
    """
    ids = ", ".join(str(int(i)) for i in run_gpu_ids)
    if not ids:
        return {}
    sql = (
        f"SELECT run_gpu_id, stream, prev_t_ms, first_ms, last_ms, prev_energy_mj, readings "
        f"FROM {SampleWindow._meta.db_table} WHERE run_gpu_id IN ({ids}) AND first_ms >= %s AND first_ms <= %s "
        "AND last_ms > %s AND COALESCE(prev_t_ms, first_ms) < %s AND stream <> %s"
    )
    found: dict[int, list[Covered]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [span.from_ms - window_ms, span.to_ms + window_ms, span.from_ms, span.to_ms, stream])
        for run_gpu_id, other, prev_t_ms, first_ms, last_ms, prev_energy_mj, blob in cursor.fetchall():
            readings = columns.decode(blob, ("energy_mj",))["energy_mj"]
            found.setdefault(int(run_gpu_id), []).append(Covered(
                other, int(first_ms if prev_t_ms is None else prev_t_ms), int(last_ms),
                int(readings[0] if prev_energy_mj is None else prev_energy_mj), int(readings[-1]),
            ))
    return found


def new_to(run_gpu_ids: Sequence[int], node_id: int, stream: str, seq: int) -> set[int]:
    """Those of these GPUs for which ``stream`` (of node ``node_id``) has no stored window yet, its batch ``seq``
    being stored (its receipt claimed, its windows not yet written).

    A stream's batches carry the same GPUs, so a GPU is new to it when the stream's nearest stored batches
    before and after ``seq`` (found by their receipts: ``receipt_unique`` leads with node and stream) hold no
    window of it, and a stream with no other batch stored is new to every GPU: index probes, mostly one (the
    previous batch). Only a GPU that those batches did not carry, while the stream has others, has its
    windows looked through for the stream's.
    """
    ids = [int(i) for i in run_gpu_ids]
    if not ids:
        return set()
    unsure = set(ids) - _written(ids, stream, [seq - 1])
    if not unsure:
        return set()
    receipts = BatchReceipt._meta.db_table
    nearest = (f"(SELECT seq FROM {receipts} WHERE node_id = %s AND stream = %s AND seq {{}} %s "
               "ORDER BY seq {} LIMIT 1)")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {nearest.format('<', 'DESC')}, {nearest.format('>', 'ASC')}",
                       [node_id, stream, seq, node_id, stream, seq])
        neighbours = [int(n) for n in cursor.fetchone() if n is not None]
    if not neighbours:
        return unsure
    unsure -= _written(sorted(unsure), stream, neighbours)
    return unsure - _written(sorted(unsure), stream) if unsure else set()


def _written(run_gpu_ids: Sequence[int], stream: str, seqs: Sequence[int] | None = None) -> set[int]:
    """Those of these GPUs with a window of ``stream``: of its batches ``seqs`` when given (probes of the
    ``(run_gpu, seq)`` index), else any (a look through the GPU's windows until one is the stream's)."""
    only = ""
    if seqs is not None:
        seqs = [q for q in seqs if q >= 0]
        if not seqs:
            return set()
        only = f" AND w.seq IN ({_id_list(seqs)})"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.id FROM {RunGpu._meta.db_table} r WHERE r.id IN ({_id_list(run_gpu_ids)}) AND EXISTS "
            f"(SELECT 1 FROM {SampleWindow._meta.db_table} w WHERE w.run_gpu_id = r.id AND w.stream = %s{only})",
            [stream],
        )
        return {int(row[0]) for row in cursor.fetchall()}


def _id_list(values: Iterable[int]) -> str:
    return ", ".join(str(int(v)) for v in values)

"""Storing many authenticated batches as one unit of work: one receipt statement, one statement per table.

``batch_store`` stores one batch in a handful of statements; most of what a batch costs the server is that
fixed part (the transaction, the receipt, the statements), not its samples. A group of batches waiting at the
same time (``dashboard.telemetry.coalesce``) is stored here inside one transaction, as ``batch_store`` would
store them one after another, with the same rows, totals and rollups:

* one statement claims every receipt (``batch_store.claim_receipts``: advisory locks on the keys in one order,
  then ``INSERT … SELECT … WHERE NOT EXISTS … RETURNING``, as the receipts are partitioned and no unique index
  spans the key); a batch already stored with the same content (a redelivery) is a duplicate and writes
  nothing else;
* each GPU's running totals are summed over the group first and upserted once (one row per run and GPU);
* each window continues its stream's previous window, found in the group, in what this consumer's last group
  stored (``IngestMemo.stream_ends``) or in one query;
* one ``COPY`` of the windows (multi-row ``INSERT``s on SQLite), each window's columns one blob encoded by
  ``dashboard.telemetry.columns`` (``batch_store.window_rows``: the bytes ``batch_store`` and the bulk loader
  write), and one upsert of the minute rollups, folded over the group first;
* ``samples_stored`` is announced once per run the group stored samples of, after commit (a batch stored alone
  announces its own).

What the group cannot take raises ``NotAsOne`` (a replayed sequence number, a window that does not continue,
a GPU another stream writes too, whose windows must be counted once): the caller rolls the transaction back
and stores its batches one by one with ``batch_store``, which says what is wrong with which.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from django.db import connection, transaction

from dashboard.telemetry import batch_store, ingest_memo
from dashboard.telemetry.admission import Outcome, Status
from dashboard.telemetry.bound_sql import arrays, bound_cursor, unnest
from dashboard.telemetry.ingest_memo import IngestMemo
from dashboard.telemetry.models import BatchReceipt, Gpu, Node, RunEvent, SampleWindow
from dashboard.telemetry.signals import announce, samples_stored
from dashboard.telemetry.window_figures import MINUTE_FOLDS, WindowStats, minute_rows, window_stats
from wattwise_agent.wire import Batch

# PostgreSQL takes at most 65,535 parameters in a statement (SQLite 32,766): larger groups are written in chunks.
MAX_PARAMS = 30_000


class NotAsOne(Exception):
    """The group cannot be stored as one: store its batches one by one."""


@dataclass(frozen=True)
class Admitted:
    """A batch that passed admission (token, signature, wire models, clock), ready to store."""

    index: int  # its place in what the caller received
    envelope: Any
    node: Node
    batch: Batch
    digest: str

    @property
    def key(self) -> tuple[int, str, int]:
        return self.node.pk, self.batch.stream, self.batch.seq


def store_group(items: Sequence[Admitted], memo: IngestMemo | None) -> dict[int, Outcome]:
    """Store ``items`` (distinct receipt keys) inside the caller's transaction; their outcomes by index."""
    run_ids = {item.index: ingest_memo.run_id(item.node, item.batch.run, memo, simulated=item.batch.simulated)
               for item in items}
    new = _claim_receipts(items, run_ids)
    outcomes: dict[int, Outcome] = {}
    seen = [item for item in items if item.key not in new]
    if seen:
        stored = _stored_digests(seen)
        for item in seen:
            if stored.get(item.key) != item.digest:
                raise NotAsOne(f"batch {item.batch.seq} of stream {item.batch.stream} replays a sequence number")
            outcomes[item.index] = Outcome(
                Status.DUPLICATE, f"batch {item.batch.seq} of stream {item.batch.stream} already stored",
                run_id=run_ids[item.index],
            )
    fresh = [item for item in items if item.key in new]
    if not fresh:
        return outcomes
    gpu_ids: dict[int, dict[str, int]] = {}
    for item in fresh:
        ingest_memo.note_session(run_ids[item.index], item.node, item.batch.stream, memo)
        gpu_ids[item.index] = ingest_memo.gpu_ids(item.node, item.batch.gpus, memo, simulated=item.batch.simulated)
    windows = [(item.index, gpu) for item in fresh for gpu in item.batch.gpus]
    stats = dict(zip([(index, gpu.uuid) for index, gpu in windows], window_stats([gpu for _, gpu in windows]), strict=True))
    run_gpu_ids = _upsert_run_gpus(fresh, run_ids, gpu_ids, stats, memo)
    _check_continuity(fresh, run_gpu_ids, memo)
    _insert_windows(batch_store.window_rows([
        (item.batch, gpu, run_gpu_ids[item.index, gpu.uuid], stats[item.index, gpu.uuid])
        for item in fresh for gpu in item.batch.gpus
    ]))
    batch_store.upsert_minute_rows(_folded_minutes(minute_rows([
        (gpu, run_gpu_ids[index, gpu.uuid], stats[index, gpu.uuid]) for index, gpu in windows
    ])))
    _insert_events([(run_ids[item.index], item.node.pk, e.t_ms, e.kind, e.fields)
                    for item in fresh for e in item.batch.events])
    for node in {item.node.pk: item.node for item in fresh}.values():
        ingest_memo.note_seen(node, memo)
    # Once per run, not per batch: its receivers only mark the run changed (version tokens, carbon's debounced
    # recompute), so ten batches of one run in a group need one announcement, sent as the group commits.
    for run_id in sorted({run_ids[item.index] for item in fresh}):
        announce(samples_stored, run_id)
    for item in fresh:
        detail = f"batch {item.batch.seq} of stream {item.batch.stream}"
        implausible = {gpu.uuid: stats[item.index, gpu.uuid].implausible for gpu in item.batch.gpus
                       if stats[item.index, gpu.uuid].implausible}
        if implausible:
            detail += "; " + batch_store.record_implausible(item.node, detail, implausible)
        outcomes[item.index] = Outcome(Status.STORED, detail, item.batch.samples, run_ids[item.index])
    # The windows' ends go to the memo once the transaction commits, never before: it only holds windows that exist.
    ends = [((run_gpu_ids[item.index, gpu.uuid], item.batch.stream), item.batch.seq, int(gpu.t_ms[-1]))
            for item in fresh for gpu in item.batch.gpus]
    transaction.on_commit(partial(ingest_memo.note_stream_ends, ends, memo))
    return outcomes


def _chunks(rows: Sequence[Any], width: int) -> list[Sequence[Any]]:
    step = max(1, MAX_PARAMS // width)
    return [rows[i:i + step] for i in range(0, len(rows), step)]


def _insert_windows(rows: list[list[Any]]) -> None:
    """The group's windows: one ``COPY`` on PostgreSQL, else multi-row ``INSERT``s."""
    if connection.vendor == "postgresql":
        batch_store.copy_window_rows(rows)
        return
    for chunk in _chunks(rows, len(rows[0])):
        batch_store.insert_window_rows(list(chunk))


def _insert_events(rows: list[tuple[int, int, int, str, Any]]) -> None:
    """The group's events (run id, node id, time, kind, fields): one ``COPY`` on PostgreSQL."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        RunEvent.objects.bulk_create([RunEvent(run_id=r, node_id=n, t_ms=t, kind=k, data=d) for r, n, t, k, d in rows])
        return
    with connection.cursor() as cursor, cursor.cursor.copy(
        f"COPY {RunEvent._meta.db_table} (run_id, node_id, t_ms, kind, data) FROM STDIN"
    ) as copy:
        for run_id, node_id, t_ms, kind, data in rows:
            copy.write_row((run_id, node_id, t_ms, kind, json.dumps(data)))


def _claim_receipts(items: Sequence[Admitted], run_ids: dict[int, int]) -> set[batch_store.ReceiptKey]:
    """Insert every receipt that is new (``batch_store.claim_receipts``: advisory locks on the keys, then only
    the keys not stored); the keys inserted. One statement on PostgreSQL, whose arrays take any number."""
    receipts = [(*item.key, run_ids[item.index], item.digest, item.batch.samples) for item in items]
    if connection.vendor == "postgresql":
        return batch_store.claim_receipts(receipts)
    return {key for chunk in _chunks(receipts, 7) for key in batch_store.claim_receipts(chunk)}


def _stored_digests(items: Sequence[Admitted]) -> dict[tuple[int, str, int], str]:
    table = BatchReceipt._meta.db_table
    found: dict[tuple[int, str, int], str] = {}
    for chunk in _chunks(items, 3):
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT node_id, stream, seq, body_sha256 FROM {table} WHERE (node_id, stream, seq) IN ("
                + ", ".join(["(%s, %s, %s)"] * len(chunk)) + ")",
                [v for item in chunk for v in item.key],
            )
            found.update({(int(n), str(s), int(q)): digest for n, s, q, digest in cursor.fetchall()})
    return found


def _upsert_run_gpus(
    items: Sequence[Admitted], run_ids: dict[int, int], gpu_ids: dict[int, dict[str, int]],
    stats: dict[tuple[int, str], WindowStats], memo: IngestMemo | None,
) -> dict[tuple[int, str], int]:
    """Add the group's totals to each GPU's running totals, one row per run and GPU (summed here first); the
    run GPU ids by (item index, uuid). A GPU written by two streams raises ``NotAsOne``: its windows are counted
    once by ``batch_store``, one batch at a time."""
    totals: dict[tuple[int, int], list[Any]] = {}
    for item in items:
        batch = item.batch
        for gpu in batch.gpus:
            s = stats[item.index, gpu.uuid]
            key = (run_ids[item.index], gpu_ids[item.index][gpu.uuid])
            if memo is not None and key in memo.shared_run_gpus:
                raise NotAsOne(f"GPU {gpu.uuid} is written by several streams")
            first_ms, last_ms = int(gpu.t_ms[0]), int(gpu.t_ms[-1])
            window_ms = last_ms - (first_ms if gpu.prev_t_ms is None else gpu.prev_t_ms)
            row = [s.energy_j, gpu.samples, s.power_sum_w, s.peak_power_w, first_ms, last_ms,
                   gpu.energy_source != Gpu.EnergySource.COUNTER, batch.stream, window_ms]
            held = totals.get(key)
            if held is None:
                totals[key] = row
                continue
            if held[7] != batch.stream:
                raise NotAsOne(f"GPU {gpu.uuid} is written by several streams in one group")
            totals[key] = [held[0] + row[0], held[1] + row[1], held[2] + row[2], max(held[3], row[3]),
                           min(held[4], row[4]), max(held[5], row[5]), held[6] or row[6], held[7], max(held[8], row[8])]
    ids: dict[tuple[int, int], int] = {}
    shared: list[tuple[int, int]] = []
    rows = [[run_id, gpu_id, *row] for (run_id, gpu_id), row in totals.items()]
    for run_gpu_id, run_id, gpu_id, is_shared in batch_store.upsert_run_gpus(rows, returning="id, run_id, gpu_id, shared"):
        ids[run_id, gpu_id] = run_gpu_id
        if is_shared:
            shared.append((run_id, gpu_id))
    if shared:
        if memo is not None:
            memo.shared_run_gpus.update(shared)
        raise NotAsOne("a GPU of the group is written by several streams")
    return {(item.index, uuid): ids[run_ids[item.index], gpu_id]
            for item in items for uuid, gpu_id in gpu_ids[item.index].items()}


def _check_continuity(
    items: Sequence[Admitted], run_gpu_ids: dict[tuple[int, str], int], memo: IngestMemo | None
) -> None:
    """Each window must continue the stream's previous one (as ``batch_store`` checks), in the group or stored:
    the latest window a group of this process stored (``ingest_memo.stream_end``), else queried."""
    in_group = {(run_gpu_ids[item.index, gpu.uuid], item.batch.stream, item.batch.seq): int(gpu.t_ms[-1])
                for item in items for gpu in item.batch.gpus}
    wanted = {(run_gpu_ids[item.index, gpu.uuid], item.batch.stream, item.batch.seq - 1)
              for item in items if item.batch.seq > 0 for gpu in item.batch.gpus}
    previous = dict(in_group)
    missing = []
    for key in sorted(key for key in wanted if key not in in_group):
        last_ms = ingest_memo.stream_end(key, memo)
        if last_ms is None:
            missing.append(key)
        else:
            previous[key] = last_ms
    previous.update(_last_ms_of(missing))
    for item in items:
        if item.batch.seq == 0:
            continue
        for gpu in item.batch.gpus:
            last_ms = previous.get((run_gpu_ids[item.index, gpu.uuid], item.batch.stream, item.batch.seq - 1))
            if last_ms is not None and gpu.prev_t_ms is not None and gpu.prev_t_ms != last_ms:
                raise NotAsOne(f"batch {item.batch.seq} of stream {item.batch.stream} does not continue its stream")


_KEY_TYPES = ("bigint", "text", "bigint")  # a window's key: run GPU id, stream, seq


def _last_ms_of(keys: list[tuple[int, str, int]]) -> dict[tuple[int, str, int], int]:
    """The last reading of each stored window named by (run GPU id, stream, seq), where there is one."""
    table = SampleWindow._meta.db_table
    found: dict[tuple[int, str, int], int] = {}
    if connection.vendor == "postgresql" and keys:
        with bound_cursor() as cursor:
            cursor.execute(
                f"SELECT w.run_gpu_id, w.stream, w.seq, w.last_ms FROM {table} AS w "
                f"JOIN {unnest(_KEY_TYPES)} AS k (run_gpu_id, stream, seq) "
                "ON w.run_gpu_id = k.run_gpu_id AND w.stream = k.stream AND w.seq = k.seq",
                arrays(keys, _KEY_TYPES),
            )
            return {(int(r), str(s), int(q)): int(last) for r, s, q, last in cursor.fetchall()}
    for chunk in _chunks(keys, 3):
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT run_gpu_id, stream, seq, last_ms FROM {table} "
                "WHERE (run_gpu_id, stream, seq) IN (" + ", ".join(["(%s, %s, %s)"] * len(chunk)) + ")",
                [v for key in chunk for v in key],
            )
            found.update({(int(r), str(s), int(q)): int(last) for r, s, q, last in cursor.fetchall()})
    return found


def _folded_minutes(rows: list[list[Any]]) -> list[list[Any]]:
    """Minute rollup rows of the whole group, one per GPU and minute, folded as the upsert would merge them."""
    folds = [np.add, np.add, np.add, np.minimum, np.maximum, *(fold for _, _, fold in MINUTE_FOLDS)]
    merged: dict[tuple[int, int], list[Any]] = {}
    for row in rows:
        key = (row[0], row[1])
        held = merged.get(key)
        if held is None:
            merged[key] = list(row)
            continue
        for i, fold in enumerate(folds, start=2):
            held[i] = held[i] + row[i] if fold is np.add else (min if fold is np.minimum else max)(held[i], row[i])
    return list(merged.values())

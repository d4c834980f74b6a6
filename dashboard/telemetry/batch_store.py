"""Storing one authenticated batch: its receipt, its GPUs' running totals, its windows and minute rollups.

A batch arrives here checked (``dashboard.telemetry.admission``) and decoded, inside its transaction, so it
is stored whole or not at all. Celery delivers at least once, so a batch is identified by (node, stream,
seq): the first copy is stored, later identical copies are counted as duplicates, and a different batch
under a key already used is rejected as a replay. A batch must continue its stream's previous window. A
GPU that several agent streams read over the same time is counted once (``dashboard.telemetry.coverage``).
The statements are SQL written out (upserts with ``RETURNING``): a batch costs a handful of statements
whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from django.db import connection
from django.utils import timezone

from dashboard.telemetry import columns, coverage, ingest_memo
from dashboard.telemetry.admission import Outcome, Rejected, Status, record_rejection
from dashboard.telemetry.bound_sql import arrays, bound_cursor, unnest, write_rows
from dashboard.telemetry.ingest_memo import IngestMemo
from dashboard.telemetry.models import (
    BatchReceipt,
    Gpu,
    GpuMinute,
    Node,
    Rejection,
    RunEvent,
    RunGpu,
    SampleWindow,
)
from dashboard.telemetry.signals import announce, samples_stored
from dashboard.telemetry.window_figures import (
    MINUTE_COLUMNS,
    MINUTE_FOLDS,
    WindowStats,
    minute_rows,
    window_stats,
)
from dashboard.telemetry.windows import TimeRange
from planner.units import MILLIJOULES_PER_J
from wattwise_agent.wire import KIND_BATCH, Batch, GpuWindow, Implausible

ReceiptKey = tuple[int, str, int]  # (node id, stream, seq)

# What a receipt claim inserts: (node id, stream, seq, run id, body digest, samples), PostgreSQL types.
_RECEIPT_TYPES = ("bigint", "text", "bigint", "bigint", "text", "integer")


def claim_receipts(receipts: Sequence[tuple[int, str, int, int, str, int]]) -> set[ReceiptKey]:
    """Insert the idempotency rows (node id, stream, seq, run id, body digest, samples; distinct keys) whose key
    is not stored yet, in one statement; the keys inserted (also used by ``group_store``).

    On PostgreSQL receipts are partitioned by ``received_at``, so no unique index can span the key alone
    (migration 0013): a transaction-level advisory lock on each key, taken in the order of the lock ids (so
    two groups sharing keys cannot deadlock), makes concurrent copies of one batch take turns, and the
    second one, reading after the first committed, finds its receipt. SQLite's unique constraint and single
    writer do the same there.
    """
    if not receipts:
        return set()
    table = BatchReceipt._meta.db_table
    now = timezone.now()
    if connection.vendor == "postgresql":
        with bound_cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(lock_id) FROM (SELECT DISTINCT hashtextextended(key, 0) AS lock_id "
                "FROM unnest(%s::text[]) AS key) AS locks ORDER BY lock_id",
                [[f"receipt:{node_id}:{stream}:{seq}" for node_id, stream, seq, *_ in receipts]],
            )
            source = unnest(_RECEIPT_TYPES) + " AS v (node_id, stream, seq, run_id, body_sha256, samples)"
            cursor.execute(_receipts_not_stored(table, source), [now, *arrays(receipts, _RECEIPT_TYPES)])
            return {(int(n), str(s), int(q)) for n, s, q in cursor.fetchall()}
    named = "SELECT %s AS node_id, %s AS stream, %s AS seq, %s AS run_id, %s AS body_sha256, %s AS samples"
    source = "(" + " UNION ALL ".join([named] + ["SELECT %s, %s, %s, %s, %s, %s"] * (len(receipts) - 1)) + ") AS v"
    with connection.cursor() as cursor:
        cursor.execute(_receipts_not_stored(table, source), [now, *(value for receipt in receipts for value in receipt)])
        return {(int(n), str(s), int(q)) for n, s, q in cursor.fetchall()}


def _receipts_not_stored(table: str, source: str) -> str:
    """Insert the rows of ``source`` (``v``; the time received is the first parameter) whose key is not stored."""
    return (
        f"INSERT INTO {table} (node_id, stream, seq, run_id, body_sha256, samples, received_at) "
        f"SELECT v.node_id, v.stream, v.seq, v.run_id, v.body_sha256, v.samples, %s FROM {source} "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS r WHERE r.node_id = v.node_id AND r.stream = v.stream "
        "AND r.seq = v.seq) RETURNING node_id, stream, seq"
    )


def _claim_receipt(node: Node, batch: Batch, run_id: int, digest: str) -> bool:
    """Insert the batch's idempotency row; False when (node, stream, seq) was already stored."""
    return bool(claim_receipts([(node.pk, batch.stream, batch.seq, run_id, digest, batch.samples)]))


def store_batch(node: Node, batch: Batch, digest: str, memo: IngestMemo | None) -> Outcome:
    """Store an authenticated, decoded batch, inside the caller's transaction: once, whole, counted once."""
    run_id = ingest_memo.run_id(node, batch.run, memo, simulated=batch.simulated)
    if not _claim_receipt(node, batch, run_id, digest):
        stored = BatchReceipt.objects.get(node=node, stream=batch.stream, seq=batch.seq)
        if stored.body_sha256 != digest:
            raise Rejected(
                f"replayed sequence number: batch {batch.seq} of stream {batch.stream} was already "
                "stored with different content", Rejection.Code.REPLAY,
            )
        return Outcome(Status.DUPLICATE, f"batch {batch.seq} of stream {batch.stream} already stored", run_id=run_id)
    ingest_memo.note_session(run_id, node, batch.stream, memo)
    gpu_ids = ingest_memo.gpu_ids(node, batch.gpus, memo, simulated=batch.simulated)
    stats = dict(zip([gpu.uuid for gpu in batch.gpus], window_stats(batch.gpus), strict=True))
    run_gpu_ids, shared = _upsert_run_gpus(run_id, batch, gpu_ids, stats)
    _check_continuity(batch, run_gpu_ids)
    if shared:
        stats |= _count_once(node, batch, shared, run_gpu_ids, stats)
    _insert_windows(batch, run_gpu_ids, stats)
    _upsert_minutes(batch, run_gpu_ids, stats)
    if batch.events:
        RunEvent.objects.bulk_create(
            [RunEvent(run_id=run_id, node=node, t_ms=e.t_ms, kind=e.kind, data=e.fields) for e in batch.events]
        )
    ingest_memo.note_seen(node, memo)
    announce(samples_stored, run_id)
    detail = f"batch {batch.seq} of stream {batch.stream}"
    implausible = {gpu.uuid: stats[gpu.uuid].implausible for gpu in batch.gpus if stats[gpu.uuid].implausible}
    if implausible:
        detail += "; " + record_implausible(node, detail, implausible)
    return Outcome(Status.STORED, detail, batch.samples, run_id)


def record_implausible(node: Node, batch: str, implausible: dict[str, tuple[Implausible, ...]]) -> str:
    """Record, with the batch, the intervals it stored that count 0 J; return what was recorded."""
    described = [f"device {uuid}: {'; '.join(i.describe() for i in found[:3])}"
                 + (f" (and {len(found) - 3} more)" if len(found) > 3 else "") for uuid, found in implausible.items()]
    count = sum(len(found) for found in implausible.values())
    reason = f"{batch}: stored, but {count} implausible interval(s) count 0 J: " + " | ".join(described)
    record_rejection(KIND_BATCH, None, reason, Rejection.Code.IMPLAUSIBLE, node=node)
    return f"{count} implausible interval(s) counted 0 J"


def _count_once(
    node: Node, batch: Batch, shared: dict[str, int], run_gpu_ids: dict[str, int], stats: dict[str, WindowStats]
) -> dict[str, WindowStats]:
    """Windows of GPUs another stream also wrote (``shared``: uuid -> the GPU's ``max_window_ms``): count only
    the time no other stream's windows cover yet (``dashboard.telemetry.coverage``), and take what they
    do not count back off the running totals."""
    gpus = [gpu for gpu in batch.gpus if gpu.uuid in shared]
    ids = [run_gpu_ids[gpu.uuid] for gpu in gpus]
    spans = [coverage.intervals_ms(gpu) for gpu in gpus]
    span = TimeRange(int(min(s[0][0] for s in spans)), int(max(s[1][-1] for s in spans)))
    others = coverage.covering(ids, batch.stream, span, max(shared.values()))
    new = coverage.new_to(ids, node.pk, batch.stream, batch.seq)
    counted: dict[str, WindowStats] = {}
    corrections = []
    for gpu, run_gpu_id in zip(gpus, ids, strict=True):
        s = stats[gpu.uuid]
        once = coverage.count_once(gpu, s.deltas_mj, others.get(run_gpu_id, []),
                                   exact=gpu.energy_source == Gpu.EnergySource.COUNTER)
        # Counting once only takes away; an interval counted 0 J as implausible stays 0 J.
        deltas_mj = np.minimum(once.deltas_mj, s.deltas_mj)
        energy_j = float(deltas_mj.sum()) / MILLIJOULES_PER_J
        counted[gpu.uuid] = replace(s, deltas_mj=deltas_mj, energy_j=energy_j)
        if energy_j != s.energy_j or once.overlap_ms or run_gpu_id in new:
            corrections.append([s.energy_j - energy_j, once.overlap_ms, int(run_gpu_id in new), run_gpu_id])
    if corrections:
        table = RunGpu._meta.db_table
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET energy_j = energy_j - %s, overlap_ms = overlap_ms + %s, streams = streams + %s "
                "WHERE id = %s",
                corrections,
            )
    return counted


def _greatest() -> str:
    return "GREATEST" if connection.vendor == "postgresql" else "MAX"


def _least() -> str:
    return "LEAST" if connection.vendor == "postgresql" else "MIN"


# What ``upsert_run_gpus`` adds, per row, and the PostgreSQL type of each.
_RUN_GPU_COLUMNS = ("run_id", "gpu_id", "energy_j", "samples", "power_sum_w", "peak_power_w", "first_ms", "last_ms",
                    "estimated", "first_stream", "max_window_ms")
_RUN_GPU_TYPES = ("bigint", "bigint", "float8", "bigint", "float8", "float8", "bigint", "bigint", "boolean", "text",
                  "bigint")
_VALUES_ROWS = 2_000  # rows per statement where there are no arrays (SQLite takes at most 32,766 parameters)


def upsert_run_gpus(rows: Sequence[Sequence[Any]], *, returning: str) -> list[tuple[Any, ...]]:
    """Add ``rows`` (``_RUN_GPU_COLUMNS``, at most one per run and GPU) to the GPUs' running totals, creating the
    rows; what ``returning`` names of each (also used by ``group_store``). One statement on PostgreSQL."""
    if connection.vendor == "postgresql":
        with bound_cursor() as cursor:
            cursor.execute(_run_gpu_upsert(f"SELECT *, FALSE, 1, 0 FROM {unnest(_RUN_GPU_TYPES)}", returning),
                           arrays(rows, _RUN_GPU_TYPES))
            return cursor.fetchall()
    returned: list[tuple[Any, ...]] = []
    row = "(" + "%s, " * len(_RUN_GPU_COLUMNS) + "FALSE, 1, 0)"
    for i in range(0, len(rows), _VALUES_ROWS):
        chunk = rows[i:i + _VALUES_ROWS]
        with connection.cursor() as cursor:
            cursor.execute(_run_gpu_upsert("VALUES " + ", ".join([row] * len(chunk)), returning),
                           [value for values in chunk for value in values])
            returned.extend(cursor.fetchall())
    return returned


def _run_gpu_upsert(source: str, returning: str) -> str:
    table = RunGpu._meta.db_table
    greatest, least = _greatest(), _least()
    return (
        f"INSERT INTO {table} ({', '.join(_RUN_GPU_COLUMNS)}, shared, streams, overlap_ms) "
        f"{source} ON CONFLICT (run_id, gpu_id) DO UPDATE SET "
        f"energy_j = {table}.energy_j + excluded.energy_j, "
        f"samples = {table}.samples + excluded.samples, "
        f"power_sum_w = {table}.power_sum_w + excluded.power_sum_w, "
        f"peak_power_w = {greatest}({table}.peak_power_w, excluded.peak_power_w), "
        f"first_ms = {least}(COALESCE({table}.first_ms, excluded.first_ms), excluded.first_ms), "
        f"last_ms = {greatest}(COALESCE({table}.last_ms, excluded.last_ms), excluded.last_ms), "
        f"estimated = ({table}.estimated OR excluded.estimated), "
        f"max_window_ms = {greatest}({table}.max_window_ms, excluded.max_window_ms), "
        f"shared = ({table}.shared OR {table}.first_stream <> excluded.first_stream) "
        f"RETURNING {returning}"
    )


def _upsert_run_gpus(
    run_id: int, batch: Batch, gpu_ids: dict[str, int], stats: dict[str, WindowStats]
) -> tuple[dict[str, int], dict[str, int]]:
    """Add this batch's totals to each GPU's running totals (creating the rows); return their ids, and the
    GPUs another stream has written too, with their ``max_window_ms`` (their windows must be counted once, by
    ``_count_once``).

    The upsert locks each row until the batch commits, so batches of one GPU are stored one after another.
    """
    rows: list[list[int | float | str | bool]] = []
    for gpu in batch.gpus:
        s = stats[gpu.uuid]
        rows.append(
            [run_id, gpu_ids[gpu.uuid], s.energy_j, gpu.samples, s.power_sum_w, s.peak_power_w,
             int(gpu.t_ms[0]), int(gpu.t_ms[-1]), gpu.energy_source != Gpu.EnergySource.COUNTER, batch.stream,
             int(gpu.t_ms[-1]) - (int(gpu.t_ms[0]) if gpu.prev_t_ms is None else gpu.prev_t_ms)]
        )
    returned = upsert_run_gpus(rows, returning="id, gpu_id, shared, max_window_ms")
    by_gpu = {gpu_id: run_gpu_id for run_gpu_id, gpu_id, _, _ in returned}
    reach = {gpu_id: int(longest) for _, gpu_id, shared, longest in returned if shared}
    return (
        {uuid: by_gpu[gpu_id] for uuid, gpu_id in gpu_ids.items()},
        {uuid: reach[gpu_id] for uuid, gpu_id in gpu_ids.items() if gpu_id in reach},
    )


def _check_continuity(batch: Batch, run_gpu_ids: dict[str, int]) -> None:
    """The previous reading a window names must be the last reading of the stream's previous window."""
    if batch.seq == 0:
        return
    ids = list(run_gpu_ids.values())
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT run_gpu_id, last_ms FROM {SampleWindow._meta.db_table} "
            f"WHERE stream = %s AND seq = %s AND run_gpu_id IN ({', '.join(['%s'] * len(ids))})",
            [batch.stream, batch.seq - 1, *ids],
        )
        previous = dict(cursor.fetchall())
    for gpu in batch.gpus:
        last_ms = previous.get(run_gpu_ids[gpu.uuid])
        if last_ms is not None and gpu.prev_t_ms is not None and gpu.prev_t_ms != last_ms:
            raise Rejected(
                f"GPU {gpu.uuid}: batch {batch.seq} continues from a reading at {gpu.prev_t_ms} ms but the "
                f"previous batch ended at {last_ms} ms (time went backwards or a batch was altered)",
                Rejection.Code.CONTINUITY,
            )


# A window row's columns, as ``window_rows`` gives them, and their PostgreSQL types (for binary ``COPY``).
WINDOW_COLUMNS = (
    "run_gpu_id", "stream", "seq", "first_ms", "last_ms", "samples", "energy_j", "prev_t_ms", "prev_energy_mj",
    "readings",
)
WINDOW_TYPES = ("int8", "text", "int8", "int8", "int8", "int4", "float8", "int8", "int8", "bytea")


def _insert_windows(batch: Batch, run_gpu_ids: dict[str, int], stats: dict[str, WindowStats]) -> None:
    insert_window_rows(window_rows([(batch, gpu, run_gpu_ids[gpu.uuid], stats[gpu.uuid]) for gpu in batch.gpus]))


def window_rows(windows: Sequence[tuple[Batch, GpuWindow, int, WindowStats]]) -> list[list[Any]]:
    """Window rows (``WINDOW_COLUMNS``) of (batch, GPU window, run GPU id, stats): one row per GPU window, its
    columns encoded as one blob (see dashboard.telemetry.columns), windows of equal length encoded together
    (``columns.encode_each``: the same bytes as each alone, and as the bulk loader's). Also used by ``group_store``."""
    blobs = columns.encode_each([
        {"t_offset_ms": gpu.t_ms - int(gpu.t_ms[0]), "energy_mj": gpu.energy_mj, "power_mw": gpu.power_mw,
         "sm_clock_mhz": gpu.sm_clock_mhz, "util_pct": gpu.util_pct, "temp_c": gpu.temp_c}
        for _, gpu, _, _ in windows
    ])
    return [
        [run_gpu_id, batch.stream, batch.seq, int(gpu.t_ms[0]), int(gpu.t_ms[-1]), gpu.samples,
         stats.energy_j, gpu.prev_t_ms, gpu.prev_energy_mj, blob]
        for (batch, gpu, run_gpu_id, stats), blob in zip(windows, blobs, strict=True)
    ]


def insert_window_rows(rows: list[list[Any]]) -> None:
    """Insert window rows (``window_rows``) in one statement (also used by ``group_store``, which chunks them)."""
    row = "(" + ", ".join(["%s"] * len(WINDOW_COLUMNS)) + ")"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SampleWindow._meta.db_table} ({', '.join(WINDOW_COLUMNS)}) "
            f"VALUES {', '.join([row] * len(rows))}",
            [value for params in rows for value in params],
        )


def copy_window_rows(rows: list[list[Any]]) -> None:
    """Many window rows (``window_rows``) with one binary PostgreSQL ``COPY`` (what ``group_store`` writes)."""
    write_rows(SampleWindow._meta.db_table, WINDOW_COLUMNS, WINDOW_TYPES, rows)


def _merge_minute(table: str, column: str, fold: np.ufunc) -> str:
    if fold is np.add:
        return f"{column} = {table}.{column} + excluded.{column}"
    merge = _least() if fold is np.minimum else _greatest()
    return f"{column} = {merge}({table}.{column}, excluded.{column})"


def _upsert_minutes(batch: Batch, run_gpu_ids: dict[str, int], stats: dict[str, WindowStats]) -> None:
    """Fold the batch into per-minute rollups. Each interval's energy counts in the minute it ends."""
    upsert_minute_rows(minute_rows([(gpu, run_gpu_ids[gpu.uuid], stats[gpu.uuid]) for gpu in batch.gpus]))


def upsert_minute_rows(rows: list[list[float | int]]) -> None:
    """Merge rollup rows (``minute_rows``; at most one per GPU and minute) into the stored rollups."""
    table = GpuMinute._meta.db_table
    postgresql = connection.vendor == "postgresql"
    if postgresql:
        # One array per column: the statement's text is the same whatever the rows (``bound_sql``).
        types = ["bigint", "bigint", "integer", *["float8"] * (len(MINUTE_COLUMNS) - 3)]
        values = "SELECT * FROM " + unnest(types)
        params: list[Any] = arrays(rows, types)
    else:
        values = "VALUES " + ", ".join(["(" + ", ".join(["%s"] * len(MINUTE_COLUMNS)) + ")"] * len(rows))
        params = [value for row in rows for value in row]
    merges = [
        f"samples = {table}.samples + excluded.samples", f"energy_j = {table}.energy_j + excluded.energy_j",
        f"power_sum_w = {table}.power_sum_w + excluded.power_sum_w",
        _merge_minute(table, "power_min_w", np.minimum), _merge_minute(table, "power_max_w", np.maximum),
        *(_merge_minute(table, column, fold) for column, _, fold in MINUTE_FOLDS),
    ]
    sql = (
        f"INSERT INTO {table} ({', '.join(MINUTE_COLUMNS)}) {values} "
        f"ON CONFLICT (run_gpu_id, minute_ms) DO UPDATE SET {', '.join(merges)}"
    )
    with bound_cursor() if postgresql else connection.cursor() as cursor:
        cursor.execute(sql, params)

"""Ingest: turn signed agent messages into stored runs, windows and rollups.

What a message must look like is declared once, in ``agents.wire`` (the models the agent sends with);
here every message is read with those models and then checked against what only the app knows: the
node is registered, the signature is its key's, the clock is sane (nothing from the future), and a
batch continues its stream's previous window. Nothing is written before all of that passed; a batch is
then written in one transaction, so it is stored whole or not at all. Celery delivers at least once, so
a batch is identified by (node, stream, seq): the first copy is stored, later identical copies are
counted as duplicates, and a different batch under a key already used is rejected as a replay.
Rejections are recorded with their reason and write nothing else.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from agents.wire import (
    KIND_BATCH,
    KIND_CLOSE_RUN,
    KIND_OPEN_RUN,
    MAX_NAME_CHARS,
    Batch,
    CloseRun,
    GpuWindow,
    OpenRun,
    WireError,
    decode_batch,
    open_envelope,
    parse,
    read_envelope,
)
from dashboard.telemetry import columns, ingest_memo
from dashboard.telemetry.ingest_memo import IngestMemo, run_for
from dashboard.telemetry.models import (
    BatchReceipt,
    Gpu,
    GpuMinute,
    Node,
    Rejection,
    Run,
    RunEvent,
    RunGpu,
    RunNode,
    RunTag,
    SampleWindow,
)
from dashboard.telemetry.signals import announce, run_closed, samples_stored
from planner.units import MILLIJOULES_PER_J, MILLIWATTS_PER_W, MS_PER_MINUTE, MS_PER_S

log = logging.getLogger(__name__)


class Rejected(Exception):
    """A message refused for a reason the sender should see."""


class Status(StrEnum):
    """What became of a message."""

    STORED = "stored"  # a batch or profile was written
    DUPLICATE = "duplicate"  # the same message was stored before: nothing written
    REJECTED = "rejected"  # refused; the reason is in ``Rejection``
    OPENED = "opened"  # an agent session of a run began
    CLOSED = "closed"  # an agent session of a run ended


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str = ""
    samples: int = 0
    run_id: int | None = None  # the run the message was about, once known

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


def ms_to_datetime(t_ms: int) -> datetime:
    return datetime.fromtimestamp(t_ms / MS_PER_S, tz=UTC)


# --- checking messages ----------------------------------------------------------------------------


def authenticate(envelope: Any, kind: str, memo: IngestMemo | None = None) -> tuple[Node, dict[str, Any], str]:
    """Authenticate an envelope: return its node, decoded payload and body digest, or raise.

    Raises ``Rejected`` or ``WireError``; callers record either with ``record_rejection``.
    """
    message = read_envelope(envelope)
    node = ingest_memo.node_named(message.node, memo)
    if node is None:
        raise Rejected(f"unknown node {message.node!r}: register it with `manage.py create_node`")
    try:
        payload = open_envelope(message, kind, bytes.fromhex(node.signing_key_hex))
    except WireError:
        if memo is None:
            raise
        # The token may have been rotated since this process remembered the node: check once more, afresh.
        node = ingest_memo.node_named(message.node, memo, fresh=True)
        if node is None:
            raise Rejected(f"unknown node {message.node!r}: register it with `manage.py create_node`") from None
        payload = open_envelope(message, kind, bytes.fromhex(node.signing_key_hex))
    return node, payload, hashlib.sha256(message.body.encode()).hexdigest()


def record_rejection(kind: str, envelope: Any, reason: str) -> Outcome:
    node_name = ""
    if isinstance(envelope, dict) and isinstance(envelope.get("node"), str):
        node_name = envelope["node"][:MAX_NAME_CHARS]
    body = envelope.get("body") if isinstance(envelope, dict) else None
    Rejection.objects.create(
        kind=kind,
        node_name=node_name,
        node=Node.objects.filter(name=node_name).first() if node_name else None,
        reason=reason[:2000],
        size_bytes=len(body) if isinstance(body, str) else 0,
    )
    log.warning("rejected %s from %r: %s", kind, node_name, reason)
    return Outcome(Status.REJECTED, reason)


def refuse_future(t_ms: int, what: str) -> None:
    """Refuse a time beyond now (plus the allowed clock skew): ``what`` says what lies there."""
    limit_ms = (timezone.now() + timedelta(seconds=settings.WATTWISE_MAX_FUTURE_S)).timestamp() * MS_PER_S
    if t_ms > limit_ms:
        raise Rejected(f"{what} in the future ({ms_to_datetime(t_ms).isoformat()}): check the node's clock")


# --- runs -------------------------------------------------------------------------------------------


def open_run(envelope: Any, memo: IngestMemo | None = None) -> Outcome:
    """An agent starts streaming a run: create the run if needed and note this node's session."""
    try:
        node, payload, _ = authenticate(envelope, KIND_OPEN_RUN, memo)
        message = parse(OpenRun, payload)
        with transaction.atomic():
            run = run_for(node, message.run, simulated=message.simulated)
            started = ms_to_datetime(message.started_ms)
            run.status = Run.Status.RUNNING
            run.started_at = min(run.started_at, started) if run.started_at else started
            run.ended_at = None
            run.save(update_fields=["status", "started_at", "ended_at"])
            RunTag.objects.bulk_create([RunTag(run=run, name=t) for t in message.tags], ignore_conflicts=True)
            run_node, _ = RunNode.objects.get_or_create(run=run, node=node, stream=message.stream)
            run_node.opened_at = started
            run_node.backend = message.backend[:32]
            run_node.host = message.host
            run_node.zone, run_node.region = message.zone or "", message.region or ""
            run_node.save()
        return Outcome(Status.OPENED, f"run {message.run!r} on {node.name}", run_id=run.pk)
    except (Rejected, WireError) as exc:
        return record_rejection(KIND_OPEN_RUN, envelope, str(exc))


def close_run(envelope: Any, memo: IngestMemo | None = None) -> Outcome:
    """An agent finished: close its session; the run is finished when every session is closed."""
    try:
        node, payload, _ = authenticate(envelope, KIND_CLOSE_RUN, memo)
        message = parse(CloseRun, payload)
        with transaction.atomic():
            run = run_for(node, message.run, simulated=False)
            run_node, _ = RunNode.objects.get_or_create(run=run, node=node, stream=message.stream)
            run_node.closed_at = ms_to_datetime(message.ended_ms)
            run_node.last_seq = message.last_seq
            run_node.samples_declared = message.samples_sent
            run_node.save()
            if not run.run_nodes.filter(closed_at__isnull=True).exists():
                run.status = Run.Status.FINISHED
                run.ended_at = max(rn.closed_at for rn in run.run_nodes.all() if rn.closed_at)
                run.save(update_fields=["status", "ended_at"])
                announce(run_closed, run.pk)
        return Outcome(Status.CLOSED, f"run {message.run!r} on {node.name}", run_id=run.pk)
    except (Rejected, WireError) as exc:
        return record_rejection(KIND_CLOSE_RUN, envelope, str(exc))


# --- batches ----------------------------------------------------------------------------------------


def ingest_batch(envelope: Any, memo: IngestMemo | None = None) -> Outcome:
    """Store one batch exactly once, or record why it was refused.

    ``memo``: what this worker process remembers (``dashboard.telemetry.ingest_memo``); None looks
    everything up.
    """
    try:
        try:
            return _receive_batch(envelope, memo)
        except IntegrityError:
            # Most likely an id this process remembered whose row is gone: forget everything, once more afresh.
            if memo is not None:
                memo.forget()
            return _receive_batch(envelope, memo)
    except (Rejected, WireError) as exc:
        return record_rejection(KIND_BATCH, envelope, str(exc))


def _receive_batch(envelope: Any, memo: IngestMemo | None) -> Outcome:
    node, payload, digest = authenticate(envelope, KIND_BATCH, memo)
    batch = decode_batch(payload)
    refuse_future(batch.window_end_ms, "samples lie")
    with transaction.atomic():
        return _store_batch(node, batch, digest, memo)


def _claim_receipt(node: Node, batch: Batch, run_id: int, digest: str) -> bool:
    """Insert the idempotency row; False when (node, stream, seq) was already stored."""
    table = BatchReceipt._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (node_id, stream, seq, run_id, body_sha256, samples, received_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (node_id, stream, seq) DO NOTHING RETURNING id",
            [node.pk, batch.stream, batch.seq, run_id, digest, batch.samples, timezone.now()],
        )
        return cursor.fetchone() is not None


def _store_batch(node: Node, batch: Batch, digest: str, memo: IngestMemo | None) -> Outcome:
    run_id = ingest_memo.run_id(node, batch.run, memo, simulated=batch.simulated)
    if not _claim_receipt(node, batch, run_id, digest):
        stored = BatchReceipt.objects.get(node=node, stream=batch.stream, seq=batch.seq)
        if stored.body_sha256 != digest:
            raise Rejected(
                f"replayed sequence number: batch {batch.seq} of stream {batch.stream} was already "
                "stored with different content"
            )
        return Outcome(Status.DUPLICATE, f"batch {batch.seq} of stream {batch.stream} already stored", run_id=run_id)
    ingest_memo.note_session(run_id, node, batch.stream, memo)
    gpu_ids = ingest_memo.gpu_ids(node, batch.gpus, memo, simulated=batch.simulated)
    stats = {gpu.uuid: _window_stats(gpu) for gpu in batch.gpus}
    run_gpu_ids = _upsert_run_gpus(run_id, batch, gpu_ids, stats)
    _check_continuity(batch, run_gpu_ids)
    _insert_windows(batch, run_gpu_ids, stats)
    _upsert_minutes(batch, run_gpu_ids, stats)
    if batch.events:
        RunEvent.objects.bulk_create(
            [RunEvent(run_id=run_id, node=node, t_ms=e.t_ms, kind=e.kind, data=e.fields) for e in batch.events]
        )
    ingest_memo.note_seen(node, memo)
    announce(samples_stored, run_id)
    return Outcome(Status.STORED, f"batch {batch.seq} of stream {batch.stream}", batch.samples, run_id)


@dataclass(frozen=True)
class _WindowStats:
    deltas_mj: np.ndarray
    power_w: np.ndarray
    energy_j: float
    power_sum_w: float
    peak_power_w: float


def _window_stats(gpu: GpuWindow) -> _WindowStats:
    deltas = gpu.energy_deltas_mj()
    power_w = gpu.power_mw / MILLIWATTS_PER_W
    return _WindowStats(deltas, power_w, float(deltas.sum()) / MILLIJOULES_PER_J, float(power_w.sum()), float(power_w.max()))


def _greatest() -> str:
    return "GREATEST" if connection.vendor == "postgresql" else "MAX"


def _least() -> str:
    return "LEAST" if connection.vendor == "postgresql" else "MIN"


def _upsert_run_gpus(
    run_id: int, batch: Batch, gpu_ids: dict[str, int], stats: dict[str, _WindowStats]
) -> dict[str, int]:
    """Add this batch's totals to each GPU's running totals (creating the rows); return their ids."""
    table = RunGpu._meta.db_table
    rows = []
    for gpu in batch.gpus:
        s = stats[gpu.uuid]
        rows.append(
            [run_id, gpu_ids[gpu.uuid], s.energy_j, gpu.samples, s.power_sum_w, s.peak_power_w,
             int(gpu.t_ms[0]), int(gpu.t_ms[-1]), gpu.energy_source != Gpu.EnergySource.COUNTER]
        )
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    greatest, least = _greatest(), _least()
    sql = (
        f"INSERT INTO {table} (run_id, gpu_id, energy_j, samples, power_sum_w, peak_power_w, first_ms, last_ms, "
        "estimated) "
        f"VALUES {values} ON CONFLICT (run_id, gpu_id) DO UPDATE SET "
        f"energy_j = {table}.energy_j + excluded.energy_j, "
        f"samples = {table}.samples + excluded.samples, "
        f"power_sum_w = {table}.power_sum_w + excluded.power_sum_w, "
        f"peak_power_w = {greatest}({table}.peak_power_w, excluded.peak_power_w), "
        f"first_ms = {least}(COALESCE({table}.first_ms, excluded.first_ms), excluded.first_ms), "
        f"last_ms = {greatest}(COALESCE({table}.last_ms, excluded.last_ms), excluded.last_ms), "
        f"estimated = ({table}.estimated OR excluded.estimated) "
        "RETURNING id, gpu_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])
        by_gpu = dict((gpu_id, run_gpu_id) for run_gpu_id, gpu_id in cursor.fetchall())
    return {uuid: by_gpu[gpu_id] for uuid, gpu_id in gpu_ids.items()}


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
                f"previous batch ended at {last_ms} ms (time went backwards or a batch was altered)"
            )


_WINDOW_COLUMNS = (
    "run_gpu_id", "stream", "seq", "first_ms", "last_ms", "samples", "energy_j", "prev_energy_mj",
    "t_offset_ms", "energy_mj", "power_mw", "sm_clock_mhz", "util_pct", "temp_c",
)


def _insert_windows(batch: Batch, run_gpu_ids: dict[str, int], stats: dict[str, _WindowStats]) -> None:
    """One row per GPU: the window's columns packed as integer arrays (see dashboard.telemetry.columns)."""
    params: list[Any] = []
    for gpu in batch.gpus:
        first_ms = int(gpu.t_ms[0])
        params += [
            run_gpu_ids[gpu.uuid], batch.stream, batch.seq, first_ms, int(gpu.t_ms[-1]), gpu.samples,
            stats[gpu.uuid].energy_j, gpu.prev_energy_mj,
            columns.pack("t_offset_ms", gpu.t_ms - first_ms),
            columns.pack("energy_mj", gpu.energy_mj),
            columns.pack("power_mw", gpu.power_mw),
            columns.pack("sm_clock_mhz", gpu.sm_clock_mhz),
            columns.pack("util_pct", gpu.util_pct),
            columns.pack("temp_c", gpu.temp_c),
        ]
    row = "(" + ", ".join(["%s"] * len(_WINDOW_COLUMNS)) + ")"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SampleWindow._meta.db_table} ({', '.join(_WINDOW_COLUMNS)}) "
            f"VALUES {', '.join([row] * len(batch.gpus))}",
            params,
        )


def _upsert_minutes(batch: Batch, run_gpu_ids: dict[str, int], stats: dict[str, _WindowStats]) -> None:
    """Fold the batch into per-minute rollups. Each interval's energy counts in the minute it ends."""
    rows: list[list[float | int]] = []
    for gpu in batch.gpus:
        s = stats[gpu.uuid]
        minute = gpu.t_ms // MS_PER_MINUTE * MS_PER_MINUTE
        keys, starts = np.unique(minute, return_index=True)
        counts = np.diff(np.append(starts, minute.size))
        energy_j = np.add.reduceat(s.deltas_mj, starts) / MILLIJOULES_PER_J
        power_sum = np.add.reduceat(s.power_w, starts)
        power_min = np.minimum.reduceat(s.power_w, starts)
        power_max = np.maximum.reduceat(s.power_w, starts)
        clock_sum = np.add.reduceat(gpu.sm_clock_mhz, starts)
        util_sum = np.add.reduceat(gpu.util_pct, starts)
        temp_max = np.maximum.reduceat(gpu.temp_c, starts)
        run_gpu_id = run_gpu_ids[gpu.uuid]
        for i, key in enumerate(keys):
            rows.append(
                [run_gpu_id, int(key), int(counts[i]), float(energy_j[i]), float(power_sum[i]),
                 float(power_min[i]), float(power_max[i]), float(clock_sum[i]), float(util_sum[i]),
                 float(temp_max[i])]
            )
    table = GpuMinute._meta.db_table
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    greatest, least = _greatest(), _least()
    sql = (
        f"INSERT INTO {table} (run_gpu_id, minute_ms, samples, energy_j, power_sum_w, power_min_w, "
        f"power_max_w, sm_clock_sum_mhz, util_sum_pct, temp_max_c) VALUES {values} "
        f"ON CONFLICT (run_gpu_id, minute_ms) DO UPDATE SET "
        f"samples = {table}.samples + excluded.samples, "
        f"energy_j = {table}.energy_j + excluded.energy_j, "
        f"power_sum_w = {table}.power_sum_w + excluded.power_sum_w, "
        f"power_min_w = {least}({table}.power_min_w, excluded.power_min_w), "
        f"power_max_w = {greatest}({table}.power_max_w, excluded.power_max_w), "
        f"sm_clock_sum_mhz = {table}.sm_clock_sum_mhz + excluded.sm_clock_sum_mhz, "
        f"util_sum_pct = {table}.util_sum_pct + excluded.util_sum_pct, "
        f"temp_max_c = {greatest}({table}.temp_max_c, excluded.temp_max_c)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])

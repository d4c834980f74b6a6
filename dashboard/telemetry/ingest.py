"""Ingest: turn signed agent messages into stored runs, windows and rollups.

Every message is checked (node known, signature valid, payload well-formed, clock sane) before
anything is written; a batch is then written in one transaction, so it is stored whole or not at all.
Celery delivers at least once, so a batch is identified by (node, stream, seq): the first copy is
stored, later identical copies are counted as duplicates, and a different batch under a key already
used is rejected as a replay. Rejections are recorded with their reason and write nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from agents.wire import (
    MAX_BODY_BYTES,
    MAX_NAME_CHARS,
    Batch,
    GpuWindow,
    WireError,
    decode_batch,
    envelope_node,
    open_envelope,
)
from dashboard.telemetry import columns
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
from dashboard.telemetry.signals import run_closed, samples_stored

log = logging.getLogger(__name__)

MINUTE_MS = 60_000


class Rejected(Exception):
    """A message refused for a reason the sender should see."""


@dataclass(frozen=True)
class Outcome:
    status: str  # stored | duplicate | rejected | opened | closed
    detail: str = ""
    samples: int = 0
    run_id: int | None = None  # the run the message was about, once known

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tell(signal: Signal, run_id: int) -> None:
    """Send ``signal`` once the current transaction commits; what a receiver raises is logged, never raised."""

    def send() -> None:
        for receiver, result in signal.send_robust(sender=None, run_id=run_id):
            if isinstance(result, Exception):
                log.error("receiver %r failed for run %s", receiver, run_id, exc_info=result)

    transaction.on_commit(send)


def ms_to_datetime(t_ms: int) -> datetime:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC)


# --- checking messages ----------------------------------------------------------------------------


def authenticate(envelope: Any, kind: str) -> tuple[Node, dict[str, Any], str]:
    """Authenticate an envelope: return its node, decoded payload and body digest, or raise.

    Raises ``Rejected`` or ``WireError``; callers record either with ``record_rejection``.
    """
    name = envelope_node(envelope)
    body = envelope.get("body")
    if isinstance(body, str) and len(body) > MAX_BODY_BYTES:
        raise Rejected(f"batch too large: {len(body)} bytes, limit {MAX_BODY_BYTES}")
    node = _cached_node(name)
    if node is None:
        raise Rejected(f"unknown node {name!r}: register it with `manage.py create_node`")
    try:
        payload = open_envelope(envelope, kind, bytes.fromhex(node.signing_key_hex))
    except WireError:
        # The token may have been rotated since this process cached the node: check once more, afresh.
        node = _cached_node(name, fresh=True)
        if node is None:
            raise Rejected(f"unknown node {name!r}: register it with `manage.py create_node`") from None
        payload = open_envelope(envelope, kind, bytes.fromhex(node.signing_key_hex))
    return node, payload, hashlib.sha256(envelope["body"].encode()).hexdigest()


# --- per-process memo of ids ---------------------------------------------------------------------
# The hot path would otherwise spend most of its time looking up rows that never change (a node's
# GPUs, a run's id). Ids are cached per worker process; a stale id fails a foreign key, and the batch is
# then retried once with empty caches. Nodes expire quickly so a rotated token takes effect promptly.

NODE_CACHE_S = 10.0
_nodes: dict[str, tuple[Node, float]] = {}
_runs: dict[tuple[int, str], int] = {}
_gpus: dict[tuple[int, str], int] = {}
_run_nodes: set[tuple[int, int, str]] = set()
_node_seen: dict[int, float] = {}


def clear_caches() -> None:
    for cache in (_nodes, _runs, _gpus, _run_nodes, _node_seen):
        cache.clear()


def _cached_node(name: str, *, fresh: bool = False) -> Node | None:
    hit = _nodes.get(name)
    now = time.monotonic()
    if hit is not None and hit[1] > now and not fresh:
        return hit[0]
    node = Node.objects.select_related("project").filter(name=name).first()
    if node is not None:
        _nodes[name] = (node, now + NODE_CACHE_S)
    return node


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
    return Outcome("rejected", reason)


def _check_clock(batch: Batch) -> None:
    limit_ms = (timezone.now() + timedelta(seconds=settings.WATTWISE_MAX_FUTURE_S)).timestamp() * 1000
    if batch.window_end_ms > limit_ms:
        raise Rejected(
            f"samples lie in the future ({ms_to_datetime(batch.window_end_ms).isoformat()}): "
            "check the node's clock"
        )


def _str_field(payload: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = payload.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > MAX_NAME_CHARS:
        raise WireError(f"{key}: expected a non-empty string of at most {MAX_NAME_CHARS} characters")
    return value


def _ms_field(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError(f"{key}: expected a timestamp in milliseconds, got {value!r}")
    return value


# --- runs -------------------------------------------------------------------------------------------


def _run_for(node: Node, name: str, *, simulated: bool) -> Run:
    run, _ = Run.objects.get_or_create(project=node.project, name=name, defaults={"simulated": simulated})
    return run


# Where the agent says it runs: a grid zone id (``SE-SE3``) and/or a cloud region (``aws:eu-north-1``).
# Only the spelling is checked here; the carbon app resolves them and says when one is unknown.
_ZONE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_REGION_RE = re.compile(r"^(aws|gcp|azure):[A-Za-z0-9][A-Za-z0-9\-]{0,54}$", re.IGNORECASE)


def _place_fields(payload: dict[str, Any]) -> tuple[str, str]:
    zone, region = payload.get("zone"), payload.get("region")
    if zone is not None and (not isinstance(zone, str) or not _ZONE_RE.match(zone)):
        raise WireError(f"zone: expected a grid zone id such as SE-SE3, got {zone!r}")
    if region is not None and (not isinstance(region, str) or not _REGION_RE.match(region)):
        raise WireError(f"region: expected a cloud region such as aws:eu-north-1, got {region!r}")
    return zone or "", (region or "").lower()


def open_run(envelope: Any) -> Outcome:
    """An agent starts streaming a run: create the run if needed and note this node's session."""
    try:
        node, payload, _ = authenticate(envelope, "open_run")
        run_name = _str_field(payload, "run")
        stream = _str_field(payload, "stream")
        started_ms = _ms_field(payload, "started_ms")
        tags = payload.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) and len(t) <= 64 for t in tags):
            raise WireError("tags: expected a list of short strings")
        zone, region = _place_fields(payload)
        with transaction.atomic():
            run = _run_for(node, run_name, simulated=bool(payload.get("simulated", False)))
            started = ms_to_datetime(started_ms)
            run.status = Run.RUNNING
            run.started_at = min(run.started_at, started) if run.started_at else started
            run.ended_at = None
            run.save(update_fields=["status", "started_at", "ended_at"])
            RunTag.objects.bulk_create([RunTag(run=run, name=t) for t in tags], ignore_conflicts=True)
            run_node, _ = RunNode.objects.get_or_create(run=run, node=node, stream=stream)
            run_node.opened_at = started
            run_node.backend = _str_field(payload, "backend", required=False)[:32]
            run_node.host = _str_field(payload, "host", required=False)
            run_node.zone, run_node.region = zone, region
            run_node.save()
        return Outcome("opened", f"run {run_name!r} on {node.name}", run_id=run.pk)
    except (Rejected, WireError) as exc:
        return record_rejection("open_run", envelope, str(exc))


def close_run(envelope: Any) -> Outcome:
    """An agent finished: close its session; the run is finished when every session is closed."""
    try:
        node, payload, _ = authenticate(envelope, "close_run")
        run_name = _str_field(payload, "run")
        stream = _str_field(payload, "stream")
        ended_ms = _ms_field(payload, "ended_ms")
        last_seq = payload.get("last_seq")
        samples_sent = payload.get("samples_sent")
        with transaction.atomic():
            run = _run_for(node, run_name, simulated=False)
            run_node, _ = RunNode.objects.get_or_create(run=run, node=node, stream=stream)
            run_node.closed_at = ms_to_datetime(ended_ms)
            run_node.last_seq = last_seq if isinstance(last_seq, int) and last_seq >= 0 else None
            run_node.samples_declared = samples_sent if isinstance(samples_sent, int) else None
            run_node.save()
            if not run.run_nodes.filter(closed_at__isnull=True).exists():
                run.status = Run.FINISHED
                run.ended_at = max(rn.closed_at for rn in run.run_nodes.all() if rn.closed_at)
                run.save(update_fields=["status", "ended_at"])
                _tell(run_closed, run.pk)
        return Outcome("closed", f"run {run_name!r} on {node.name}", run_id=run.pk)
    except (Rejected, WireError) as exc:
        return record_rejection("close_run", envelope, str(exc))


# --- batches ----------------------------------------------------------------------------------------


def ingest_batch(envelope: Any) -> Outcome:
    """Store one batch exactly once, or record why it was refused."""
    try:
        node, payload, digest = authenticate(envelope, "batch")
        batch = decode_batch(payload)
        _check_clock(batch)
        try:
            with transaction.atomic():
                return _store_batch(node, batch, digest)
        except IntegrityError:
            # Most likely an id cached by this process whose row is gone: look everything up afresh.
            clear_caches()
            with transaction.atomic():
                return _store_batch(node, batch, digest)
    except (Rejected, WireError) as exc:
        return record_rejection("batch", envelope, str(exc))


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


def _run_id(node: Node, batch: Batch) -> int:
    key = (node.project_id, batch.run)
    run_id = _runs.get(key)
    if run_id is None:
        run_id = _run_for(node, batch.run, simulated=batch.simulated).pk
        _runs[key] = run_id
    return run_id


def _store_batch(node: Node, batch: Batch, digest: str) -> Outcome:
    run_id = _run_id(node, batch)
    if not _claim_receipt(node, batch, run_id, digest):
        stored = BatchReceipt.objects.get(node=node, stream=batch.stream, seq=batch.seq)
        if stored.body_sha256 != digest:
            raise Rejected(
                f"replayed sequence number: batch {batch.seq} of stream {batch.stream} was already "
                "stored with different content"
            )
        return Outcome("duplicate", f"batch {batch.seq} of stream {batch.stream} already stored", run_id=run_id)
    if (run_id, node.pk, batch.stream) not in _run_nodes:
        RunNode.objects.bulk_create([RunNode(run_id=run_id, node=node, stream=batch.stream)], ignore_conflicts=True)
        _run_nodes.add((run_id, node.pk, batch.stream))
    gpu_ids = _gpu_ids(node, batch)
    stats = {gpu.uuid: _window_stats(gpu) for gpu in batch.gpus}
    run_gpu_ids = _upsert_run_gpus(run_id, batch, gpu_ids, stats)
    _check_continuity(batch, run_gpu_ids)
    _insert_windows(batch, run_gpu_ids, stats)
    _upsert_minutes(batch, run_gpu_ids, stats)
    if batch.events:
        RunEvent.objects.bulk_create(
            [
                RunEvent(
                    run_id=run_id,
                    node=node,
                    t_ms=e["t_ms"],
                    kind=e["kind"],
                    data={k: v for k, v in e.items() if k not in ("t_ms", "kind")},
                )
                for e in batch.events
            ]
        )
    now = time.monotonic()
    if _node_seen.get(node.pk, 0.0) < now - 30:
        Node.objects.filter(pk=node.pk).update(last_seen_at=timezone.now())
        _node_seen[node.pk] = now
    _tell(samples_stored, run_id)
    return Outcome("stored", f"batch {batch.seq} of stream {batch.stream}", batch.samples, run_id)


def _gpu_ids(node: Node, batch: Batch) -> dict[str, int]:
    cached = {gpu.uuid: _gpus.get((node.pk, gpu.uuid)) for gpu in batch.gpus}
    if all(gpu_id is not None for gpu_id in cached.values()):
        return cached  # type: ignore[return-value]
    uuids = [gpu.uuid for gpu in batch.gpus]
    known = dict(Gpu.objects.filter(node=node, uuid__in=uuids).values_list("uuid", "id"))
    missing = [gpu for gpu in batch.gpus if gpu.uuid not in known]
    if missing:
        Gpu.objects.bulk_create(
            [
                Gpu(
                    node=node,
                    uuid=gpu.uuid,
                    index=gpu.index,
                    name=gpu.name,
                    energy_source=gpu.energy_source,
                    power_field=gpu.power_field,
                    simulated=batch.simulated,
                )
                for gpu in missing
            ],
            ignore_conflicts=True,
        )
        known = dict(Gpu.objects.filter(node=node, uuid__in=uuids).values_list("uuid", "id"))
    for uuid, gpu_id in known.items():
        _gpus[(node.pk, uuid)] = gpu_id
    return known


@dataclass(frozen=True)
class _WindowStats:
    deltas_mj: np.ndarray
    power_w: np.ndarray
    energy_j: float
    power_sum_w: float
    peak_power_w: float


def _window_stats(gpu: GpuWindow) -> _WindowStats:
    deltas = gpu.energy_deltas_mj()
    power_w = gpu.power_mw / 1000.0
    return _WindowStats(deltas, power_w, float(deltas.sum()) / 1000.0, float(power_w.sum()), float(power_w.max()))


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
             int(gpu.t_ms[0]), int(gpu.t_ms[-1]), gpu.energy_source != "counter"]
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
        minute = gpu.t_ms // MINUTE_MS * MINUTE_MS
        keys, starts = np.unique(minute, return_index=True)
        counts = np.diff(np.append(starts, minute.size))
        energy_j = np.add.reduceat(s.deltas_mj, starts) / 1000.0
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

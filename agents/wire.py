"""The agent ↔ app wire format, version 1: the one module both sides share.

Agents publish three Celery tasks by name on the broker; each takes one argument, an *envelope*:

    {"v": 1, "kind": "batch" | "open_run" | "close_run", "node": "<node name>",
     "body": "<JSON text of the payload>", "sig": "<hex HMAC-SHA256>"}

The signature covers ``v``, ``kind``, ``node`` and the exact ``body`` text, keyed with a key derived
from the node's token (the token itself never travels). Signing the body *text* rather than a parsed
object keeps both sides free of JSON canonicalisation rules.

A ``batch`` payload carries one node's window of samples, columnar per GPU:

    {"run": "gpt3-pretrain", "stream": "<agent session id>", "seq": 17, "simulated": false,
     "window_start_ms": 1700000000000, "window_end_ms": 1700000005000,
     "gpus": [{"uuid": "GPU-…", "index": 0, "name": "NVIDIA H100 80GB HBM3",
               "energy_source": "counter" | "power_integration", "power_field": "instant" | "average",
               "prev_t_ms": 1699999999900 | null, "prev_energy_mj": 123456 | null,
               "t_ms": [...], "energy_mj": [...], "power_mw": [...],
               "sm_clock_mhz": [...], "util_pct": [...], "temp_c": [...]}],
     "events": [{"t_ms": 1700000001234, "kind": "step_end", "step": 12}]}

``energy_mj`` is the GPU's raw cumulative counter (``nvmlDeviceGetTotalEnergyConsumption``), or, for
GPUs without one, the agent's own running trapezoid integral of power (``energy_source`` says which).
A ``stage_profile`` payload carries a per-stage profile recorded by the torch hooks, for the planner:

    {"run": "gpt3-pretrain" | null, "name": "<profile name>", "csv": "<Perseus CSV text:
     stage,instruction,frequency,time,energy>", "gpu_name": "NVIDIA A100-SXM4-80GB",
     "p_blocking_w": 83.6 | null, "recorded_ms": 1700000000000}

``prev_energy_mj`` / ``prev_t_ms`` repeat the last reading of the stream's previous window, so every
window's energy is a self-contained counter difference: totals are exact sums of windows, whatever
order windows arrive in. ``(node, stream, seq)`` identifies a batch; delivering it twice is harmless.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WIRE_VERSION = 1

TASK_INGEST_BATCH = "wattwise.ingest_batch"
TASK_OPEN_RUN = "wattwise.open_run"
TASK_CLOSE_RUN = "wattwise.close_run"
TASK_STAGE_PROFILE = "wattwise.stage_profile"
TASKS_BY_KIND = {
    "batch": TASK_INGEST_BATCH,
    "open_run": TASK_OPEN_RUN,
    "close_run": TASK_CLOSE_RUN,
    "stage_profile": TASK_STAGE_PROFILE,
}
TELEMETRY_QUEUE = "telemetry"

# Limits both sides agree on. The agent splits windows to stay under them; the app rejects above them.
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_SAMPLES_PER_BATCH = 200_000
MAX_GPUS_PER_BATCH = 64
MAX_EVENTS_PER_BATCH = 10_000
MAX_NAME_CHARS = 200

ENERGY_SOURCES = ("counter", "power_integration")
POWER_FIELDS = ("instant", "average")
# Columns sent per GPU, with the integer range each must fit (they are stored as fixed-width ints).
SAMPLE_COLUMNS: dict[str, tuple[int, int]] = {
    "t_ms": (0, 2**53),
    "energy_mj": (0, 2**63 - 1),
    "power_mw": (0, 2**31 - 1),
    "sm_clock_mhz": (0, 2**15 - 1),
    "util_pct": (0, 100),
    "temp_c": (-2**15, 2**15 - 1),
}


class WireError(ValueError):
    """A message that does not follow the wire format; the text says what is wrong, for the sender."""


def signing_key(token: str) -> bytes:
    """Derive the HMAC key from a node token. The app stores only this key, never the token."""
    return hashlib.sha256(b"wattwise-hmac-v1:" + token.encode()).digest()


def _mac(key: bytes, kind: str, node: str, body: str) -> str:
    message = f"{WIRE_VERSION}\n{kind}\n{node}\n".encode() + body.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def seal(kind: str, node: str, payload: Mapping[str, Any], key: bytes) -> dict[str, Any]:
    """Wrap a payload in a signed envelope, ready to publish."""
    if kind not in TASKS_BY_KIND:
        raise WireError(f"unknown message kind {kind!r}")
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return {"v": WIRE_VERSION, "kind": kind, "node": node, "body": body, "sig": _mac(key, kind, node, body)}


def envelope_node(envelope: Any) -> str:
    """The node an envelope claims to come from (unverified), or raise WireError."""
    if not isinstance(envelope, Mapping):
        raise WireError("message is not an object")
    if envelope.get("v") != WIRE_VERSION:
        raise WireError(f"unsupported wire version {envelope.get('v')!r}; this app speaks {WIRE_VERSION}")
    node = envelope.get("node")
    if not isinstance(node, str) or not node or len(node) > MAX_NAME_CHARS:
        raise WireError("missing or invalid node name")
    return node


def open_envelope(envelope: Mapping[str, Any], kind: str, key: bytes) -> dict[str, Any]:
    """Check an envelope's kind, size and signature and return its decoded payload."""
    node = envelope_node(envelope)
    if envelope.get("kind") != kind:
        raise WireError(f"expected a {kind!r} message, got {envelope.get('kind')!r}")
    body, sig = envelope.get("body"), envelope.get("sig")
    if not isinstance(body, str) or not isinstance(sig, str):
        raise WireError("missing body or signature")
    if len(body) > MAX_BODY_BYTES:
        raise WireError(f"batch too large: {len(body)} bytes, limit {MAX_BODY_BYTES}")
    if not hmac.compare_digest(_mac(key, kind, node, body), sig):
        raise WireError("bad signature: the message was not signed with this node's token")
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except ValueError as exc:
        raise WireError(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WireError("body is not a JSON object")
    return payload


def _reject_constant(name: str) -> Any:
    raise WireError(f"{name} is not a valid number")


@dataclass(frozen=True)
class GpuWindow:
    """One GPU's samples within one batch window, as integer numpy arrays."""

    uuid: str
    index: int
    name: str
    energy_source: str
    power_field: str
    prev_t_ms: int | None
    prev_energy_mj: int | None
    t_ms: np.ndarray
    energy_mj: np.ndarray
    power_mw: np.ndarray
    sm_clock_mhz: np.ndarray
    util_pct: np.ndarray
    temp_c: np.ndarray

    @property
    def samples(self) -> int:
        return int(self.t_ms.size)

    def energy_deltas_mj(self) -> np.ndarray:
        """Energy of each interval ending at a sample in this window, in mJ.

        The first interval starts at the previous window's last reading, when there is one. A counter
        that goes backwards was reset (driver reload): the interval counts the new value from zero.
        """
        readings = self.energy_mj
        if self.prev_energy_mj is not None:
            readings = np.concatenate(([self.prev_energy_mj], readings))
        deltas = np.diff(readings)
        reset = deltas < 0
        deltas[reset] = readings[1:][reset]
        if self.prev_energy_mj is None:
            deltas = np.concatenate(([0], deltas))
        return deltas


@dataclass(frozen=True)
class Batch:
    run: str
    stream: str
    seq: int
    simulated: bool
    window_start_ms: int
    window_end_ms: int
    gpus: tuple[GpuWindow, ...]
    events: tuple[dict[str, Any], ...] = field(default=())

    @property
    def samples(self) -> int:
        return sum(gpu.samples for gpu in self.gpus)


def _name(payload: Mapping[str, Any], key: str, where: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_CHARS:
        raise WireError(f"{where}{key}: expected a non-empty string of at most {MAX_NAME_CHARS} characters")
    return value


def _int(payload: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> int | None:
    value = payload.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError(f"{where}{key}: expected a non-negative integer, got {value!r}")
    return value


def _column(gpu: Mapping[str, Any], key: str, where: str, length: int | None) -> np.ndarray:
    values = gpu.get(key)
    if not isinstance(values, list):
        raise WireError(f"{where}{key}: expected a list of numbers")
    if length is not None and len(values) != length:
        raise WireError(f"{where}{key}: has {len(values)} values but t_ms has {length}")
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):
        raise WireError(f"{where}{key}: expected a flat list of numbers") from None
    if array.ndim != 1:
        raise WireError(f"{where}{key}: expected a flat list of numbers")
    if array.size and array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise WireError(f"{where}{key}: NaN or infinite value")
        if not np.all(array == np.round(array)):
            raise WireError(f"{where}{key}: expected whole numbers ({key.rsplit('_', 1)[-1]})")
    elif array.size and array.dtype.kind != "i":
        raise WireError(f"{where}{key}: contains a value that is not a number, or is out of range")
    low, high = SAMPLE_COLUMNS[key]
    if array.size and (array.min() < low or array.max() > high):
        raise WireError(f"{where}{key}: value out of range [{low}, {high}] (wrong units?)")
    return array.astype(np.int64)


def decode_batch(payload: Mapping[str, Any]) -> Batch:
    """Validate a batch payload completely and return it as arrays; raise WireError on the first problem."""
    run = _name(payload, "run", "")
    stream = _name(payload, "stream", "")
    seq = _int(payload, "seq", "")
    start_ms = _int(payload, "window_start_ms", "")
    end_ms = _int(payload, "window_end_ms", "")
    assert seq is not None and start_ms is not None and end_ms is not None
    if end_ms < start_ms:
        raise WireError("window_end_ms is before window_start_ms: time went backwards")
    simulated = payload.get("simulated", False)
    if not isinstance(simulated, bool):
        raise WireError("simulated: expected true or false")
    raw_gpus = payload.get("gpus")
    if not isinstance(raw_gpus, list) or not raw_gpus:
        raise WireError("gpus: expected a non-empty list")
    if len(raw_gpus) > MAX_GPUS_PER_BATCH:
        raise WireError(f"gpus: {len(raw_gpus)} GPUs in one batch, limit {MAX_GPUS_PER_BATCH}")
    gpus: list[GpuWindow] = []
    seen: set[str] = set()
    total = 0
    for position, raw in enumerate(raw_gpus):
        if not isinstance(raw, Mapping):
            raise WireError(f"gpus[{position}]: expected an object")
        where = f"gpus[{position}]."
        uuid = _name(raw, "uuid", where)
        if uuid in seen:
            raise WireError(f"{where}uuid: GPU {uuid} appears twice in one batch")
        seen.add(uuid)
        gpu = _decode_gpu(raw, uuid, where, start_ms, end_ms)
        total += gpu.samples
        if total > MAX_SAMPLES_PER_BATCH:
            raise WireError(f"batch too large: more than {MAX_SAMPLES_PER_BATCH} samples")
        gpus.append(gpu)
    events = _decode_events(payload.get("events", []), start_ms, end_ms)
    return Batch(run, stream, seq, simulated, start_ms, end_ms, tuple(gpus), events)


def _decode_gpu(raw: Mapping[str, Any], uuid: str, where: str, start_ms: int, end_ms: int) -> GpuWindow:
    index = _int(raw, "index", where)
    assert index is not None
    name = raw.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        raise WireError(f"{where}name: expected a string")
    energy_source = raw.get("energy_source")
    if energy_source not in ENERGY_SOURCES:
        raise WireError(f"{where}energy_source: expected one of {ENERGY_SOURCES}, got {energy_source!r}")
    power_field = raw.get("power_field", "average")
    if power_field not in POWER_FIELDS:
        raise WireError(f"{where}power_field: expected one of {POWER_FIELDS}, got {power_field!r}")
    t_ms = _column(raw, "t_ms", where, None)
    if t_ms.size == 0:
        raise WireError(f"{where}t_ms: no samples")
    columns = {key: _column(raw, key, where, t_ms.size) for key in SAMPLE_COLUMNS if key != "t_ms"}
    if np.any(np.diff(t_ms) <= 0):
        raise WireError(f"{where}t_ms: timestamps must strictly increase (time went backwards)")
    if t_ms[0] < start_ms or t_ms[-1] > end_ms:
        raise WireError(f"{where}t_ms: samples fall outside the batch window")
    prev_t_ms = _int(raw, "prev_t_ms", where, optional=True)
    prev_energy_mj = _int(raw, "prev_energy_mj", where, optional=True)
    if (prev_t_ms is None) != (prev_energy_mj is None):
        raise WireError(f"{where}prev_t_ms and prev_energy_mj must be given together")
    if prev_t_ms is not None and prev_t_ms >= t_ms[0]:
        raise WireError(f"{where}prev_t_ms: previous reading is not before this window (time went backwards)")
    return GpuWindow(uuid, index, name, energy_source, power_field, prev_t_ms, prev_energy_mj, t_ms, **columns)


def _decode_events(raw: Any, start_ms: int, end_ms: int) -> tuple[dict[str, Any], ...]:
    if not isinstance(raw, list) or len(raw) > MAX_EVENTS_PER_BATCH:
        raise WireError(f"events: expected a list of at most {MAX_EVENTS_PER_BATCH} objects")
    events = []
    for position, event in enumerate(raw):
        where = f"events[{position}]."
        if not isinstance(event, Mapping):
            raise WireError(f"events[{position}]: expected an object")
        t_ms = _int(event, "t_ms", where)
        kind = _name(event, "kind", where)
        assert t_ms is not None
        if not start_ms <= t_ms <= end_ms:
            raise WireError(f"{where}t_ms: event falls outside the batch window")
        extra = {k: v for k, v in event.items() if k not in ("t_ms", "kind")}
        if any(not isinstance(v, str | int | float) or isinstance(v, bool) for v in extra.values()):
            raise WireError(f"{where}: event fields must be strings or numbers")
        events.append({"t_ms": t_ms, "kind": kind, **extra})
    return tuple(events)


def gpu_payload(
    *,
    uuid: str,
    index: int,
    name: str,
    energy_source: str,
    power_field: str,
    prev: tuple[int, int] | None,
    columns: Mapping[str, Sequence[int]],
) -> dict[str, Any]:
    """Build one GPU's entry of a batch payload (the agent side of ``_decode_gpu``)."""
    entry: dict[str, Any] = {
        "uuid": uuid,
        "index": index,
        "name": name,
        "energy_source": energy_source,
        "power_field": power_field,
        "prev_t_ms": prev[0] if prev else None,
        "prev_energy_mj": prev[1] if prev else None,
    }
    for key in SAMPLE_COLUMNS:
        entry[key] = [int(v) for v in columns[key]]
    return entry

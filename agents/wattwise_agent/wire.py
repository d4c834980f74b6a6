# ruff: noqa: F405 (names from the star imports of wire_fields and wire_energy, re-exported)
"""The agent ↔ app wire format, version 1: the one module both sides share.

Every message the agent sends is declared here once, as a pydantic model: :class:`Envelope`, and the
payloads :class:`Batch` (with one :class:`GpuWindow` per GPU and its :class:`Event` markers),
:class:`OpenRun`, :class:`CloseRun` and :class:`StageProfile`. The agent checks what it sends with
these models (:func:`seal` refuses a payload the app would refuse, with the same message), and the app
validates what it receives with them; only what needs the app's state (the node is known, the clock is
sane, the window continues the previous one, the profile CSV suits the planner) is checked on top, by
the app. Every refusal is a :class:`WireError` whose text names the field and what is wrong.

Agents publish the messages as Celery tasks by name on the broker; each takes one argument, an *envelope*:

    {"v": 1, "kind": "batch" | "open_run" | "close_run" | "stage_profile", "node": "<node name>",
     "key": "<key id>", "body": "<JSON text of the payload>", "sig": "<hex HMAC-SHA256>"}

The signature covers ``v``, ``kind``, ``node`` and the exact ``body`` text, keyed with a key derived
from the token the agent was given (the token itself never travels). Signing the body *text* rather
than a parsed object keeps both sides free of JSON canonicalisation rules. ``key`` is the token's public
key id (:func:`key_id`): it tells the app which token signed, so the app knows the sender from its token
rather than from the name it claims. Envelopes from agents before key ids (and spooled by them) have no
``key`` and are found by node name; the signature is the same either way.

A ``batch`` payload carries one node's window of samples, columnar per GPU:

    {"run": "gpt3-pretrain", "stream": "<agent session id>", "seq": 17, "simulated": false,
     "window_start_ms": 1700000000000, "window_end_ms": 1700000005000,
     "gpus": [{"uuid": "GPU-…", "index": 0, "name": "NVIDIA H100 80GB HBM3",
               "energy_source": "counter" | "power_integration", "power_field": "instant" | "average",
               "prev_t_ms": 1699999999900 | null, "prev_energy_mj": 123456 | null,
               "power_limit_mw": 700000 (optional),
               "t_ms": [...], "energy_mj": [...], "power_mw": [...],
               "sm_clock_mhz": [...], "util_pct": [...], "temp_c": [...]}],
     "events": [{"t_ms": 1700000001234, "kind": "step_end", "step": 12}]}

An entry may measure a CPU package or its DRAM rather than a GPU (Linux RAPL): it then says so with
``"component": "cpu" | "dram"`` (absent: ``"gpu"``, as every agent before components sends), its
``energy_mj`` is the agent's unwrapped RAPL counter, its ``power_mw`` the mean over the interval before
each reading (``power_field: "average"``), and its clock, utilisation and temperature columns are zeros.

``energy_mj`` is the GPU's raw cumulative counter (``nvmlDeviceGetTotalEnergyConsumption``, modulo
``ENERGY_MODULUS_MJ``), or, for GPUs without one, the agent's own running trapezoid integral of power
(``energy_source`` says which). Energy is counted between readings by :func:`counter_step_mj`, and an
interval no device could draw (above twice its ``power_limit_mw``, when the entry gives it, or a configured
ceiling, over the interval plus a second) counts 0 J and is reported (:func:`count_window_mj`).
``prev_energy_mj`` / ``prev_t_ms`` repeat the last reading of the stream's previous window, so every
window's energy is a self-contained counter difference: totals are exact sums of windows, whatever
order windows arrive in. ``(node, stream, seq)`` identifies a batch; delivering it twice is harmless.

A ``stage_profile`` payload carries a per-stage profile recorded by the torch hooks, for the planner:

    {"run": "gpt3-pretrain" | null, "name": "<profile name>", "csv": "<Perseus CSV text:
     stage,instruction,frequency,time,energy>", "gpu_name": "NVIDIA A100-SXM4-80GB",
     "p_blocking_w": 83.6 | null, "recorded_ms": 1700000000000}

The vocabulary and field types (each limit once, as the app's columns hold it) are in
:mod:`wattwise_agent.wire_fields`, the energy counting rule in :mod:`wattwise_agent.wire_energy`; both are
re-exported here, so both sides import everything from this module.

Sample columns stay cheap to check (ingest sees tens of thousands of samples a second): each column is
validated in pydantic's compiled core, element types and ranges at once, then held as an ``int64``
numpy array; only the few checks across a column (time increases, samples lie in the window) run in
Python, on the arrays. ``benchmarks/bench_wire.py`` measures the cost.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from annotated_types import MaxLen, MinLen
from pydantic import BaseModel, ConfigDict, Strict, ValidationInfo, field_validator, model_validator
from pydantic_core import from_json

# The vocabulary, field types and counting rule are re-exported: both sides import everything from here.
from wattwise_agent.wire_energy import *  # noqa: F403

# Both sides import these from here, with the models.
from wattwise_agent.wire_errors import Expect as Expect
from wattwise_agent.wire_errors import WireError as WireError
from wattwise_agent.wire_errors import check_field as check_field
from wattwise_agent.wire_errors import parse as parse
from wattwise_agent.wire_errors import rule
from wattwise_agent.wire_fields import *  # noqa: F403
from wattwise_agent.wire_fields import _storable


class _Wire(BaseModel):
    # Unknown keys are ignored: a newer agent may send more than this app reads.
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


# --- the envelope ----------------------------------------------------------------------------------


class Envelope(_Wire):
    """What travels as the task's one argument. Unverified until :func:`open_envelope` checks the signature."""

    v: Annotated[Literal[1], Expect(f"wire version {WIRE_VERSION}, the one this app speaks")]
    kind: Annotated[MessageKind, Expect("one of " + ", ".join(TASKS_BY_KIND))]
    node: Name
    key: KeyId = None  # which token signed (key_id); absent from agents before key ids
    body: Annotated[str, Strict(), Expect("the payload as JSON text")]
    sig: Signature

    @field_validator("body")
    @classmethod
    def _not_too_large(cls, body: str) -> str:
        if len(body) > MAX_BODY_BYTES:
            raise rule(f"message too large: {len(body)} bytes, limit {MAX_BODY_BYTES}")
        return _storable(body)


# --- batch ----------------------------------------------------------------------------------------


class Event(_Wire):
    """A marker (a step ended, a stage began) at an instant of the batch's window; extra fields are its data."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, EventValue]

    t_ms: TimeMs
    kind: Name

    @model_validator(mode="after")
    def _field_names_storable(self) -> Event:
        for name in self.model_extra or {}:
            try:
                _storable(name)
            except ValueError as exc:
                raise rule(f"a field name {exc}") from None
        return self

    @property
    def fields(self) -> dict[str, str | int | float]:
        return dict(self.model_extra or {})


class GpuWindow(_Wire):
    """One GPU's samples within one batch window; the columns are int64 numpy arrays once read."""

    uuid: Name
    index: DeviceIndex
    name: Text = ""
    energy_source: EnergySource
    power_field: PowerField = POWER_AVERAGE
    component: Component = COMPONENT_GPU  # absent (agents before components): a GPU
    t_ms: Annotated[np.ndarray, IntColumn("t_ms")]
    energy_mj: Annotated[np.ndarray, IntColumn("energy_mj")]
    power_mw: Annotated[np.ndarray, IntColumn("power_mw")]
    sm_clock_mhz: Annotated[np.ndarray, IntColumn("sm_clock_mhz")]
    util_pct: Annotated[np.ndarray, IntColumn("util_pct")]
    temp_c: Annotated[np.ndarray, IntColumn("temp_c")]
    # The last reading of this GPU in the stream's previous window (both or neither).
    prev_t_ms: OptionalTimeMs = None
    prev_energy_mj: OptionalCounterMj = None
    # The most this device may draw (a GPU's highest settable power limit), when the agent knows it: what
    # bounds a plausible interval (wire_energy); absent, the receiver's configured ceiling does.
    power_limit_mw: OptionalPowerLimitMw = None

    @field_validator("t_ms")
    @classmethod
    def _time_increases(cls, t_ms: np.ndarray) -> np.ndarray:
        if t_ms.size == 0:
            raise rule("no samples")
        if t_ms.size > 1 and bool((t_ms[1:] <= t_ms[:-1]).any()):
            raise rule("timestamps must strictly increase (time went backwards)")
        return t_ms

    @field_validator("energy_mj", "power_mw", "sm_clock_mhz", "util_pct", "temp_c")
    @classmethod
    def _one_value_per_time(cls, column: np.ndarray, info: ValidationInfo) -> np.ndarray:
        t_ms = info.data.get("t_ms")
        if t_ms is not None and column.size != t_ms.size:
            raise rule(f"has {column.size} values but t_ms has {t_ms.size}")
        return column

    @field_validator("prev_t_ms")
    @classmethod
    def _previous_reading_before(cls, prev_t_ms: int | None, info: ValidationInfo) -> int | None:
        t_ms = info.data.get("t_ms")
        if prev_t_ms is not None and t_ms is not None and prev_t_ms >= t_ms[0]:
            raise rule("previous reading is not before this window (time went backwards)")
        return prev_t_ms

    @model_validator(mode="after")
    def _previous_reading_whole(self) -> GpuWindow:
        if (self.prev_t_ms is None) != (self.prev_energy_mj is None):
            raise rule("prev_t_ms and prev_energy_mj must be given together")
        return self

    @property
    def samples(self) -> int:
        return int(self.t_ms.size)

    def counted_energy(self, ceiling_w: float = DEFAULT_MAX_POWER_W) -> WindowEnergy:
        """Energy of each interval ending at a sample in this window, and those counted 0 J as implausible.

        The first interval starts at the previous window's last reading, when there is one; a counter
        that steps back wrapped around or was reset (:func:`counter_step_mj`); no interval counts more than
        the device's power limit (``power_limit_mw``, else ``ceiling_w``) allows (:func:`count_window_mj`).
        """
        prev = None if self.prev_t_ms is None or self.prev_energy_mj is None else (self.prev_t_ms, self.prev_energy_mj)
        return count_window_mj(self.energy_mj, self.t_ms, prev, power_limit_w(self.power_limit_mw, ceiling_w))

    def energy_deltas_mj(self, ceiling_w: float = DEFAULT_MAX_POWER_W) -> np.ndarray:
        """The energy of each interval :meth:`counted_energy` counts, in mJ."""
        return self.counted_energy(ceiling_w).deltas_mj


class Batch(_Wire):
    """One node's window of samples: the ``batch`` payload."""

    run: Name
    stream: StreamId
    seq: Count
    simulated: Flag = False
    window_start_ms: TimeMs
    window_end_ms: TimeMs
    gpus: Annotated[list[GpuWindow], MinLen(1), MaxLen(MAX_GPUS_PER_BATCH)]
    events: Annotated[list[Event], MaxLen(MAX_EVENTS_PER_BATCH)] = []

    @field_validator("window_end_ms")
    @classmethod
    def _window_forwards(cls, end_ms: int, info: ValidationInfo) -> int:
        start_ms = info.data.get("window_start_ms")
        if start_ms is not None and end_ms < start_ms:
            raise rule("is before window_start_ms: time went backwards")
        return end_ms

    @model_validator(mode="after")
    def _inside_the_window(self) -> Batch:
        start_ms, end_ms = self.window_start_ms, self.window_end_ms
        seen: set[str] = set()
        for position, gpu in enumerate(self.gpus):
            if gpu.uuid in seen:
                raise rule(f"gpus[{position}].uuid: GPU {gpu.uuid} appears twice in one batch")
            seen.add(gpu.uuid)
            if gpu.t_ms[0] < start_ms or gpu.t_ms[-1] > end_ms:
                raise rule(f"gpus[{position}].t_ms: samples fall outside the batch window")
        if self.samples > MAX_SAMPLES_PER_BATCH:
            raise rule(f"batch too large: {self.samples} samples, limit {MAX_SAMPLES_PER_BATCH}")
        for position, event in enumerate(self.events):
            if not start_ms <= event.t_ms <= end_ms:
                raise rule(f"events[{position}].t_ms: event falls outside the batch window")
        return self

    @property
    def samples(self) -> int:
        return sum(gpu.samples for gpu in self.gpus)


# --- runs and profiles ----------------------------------------------------------------------------


class OpenRunGpu(_Wire):
    """A GPU as ``open_run`` describes it (the agent sends more about it: architecture, MIG, power scope)."""

    uuid: Name
    index: DeviceIndex
    name: Text = ""
    energy_source: EnergySource
    power_field: PowerField = POWER_AVERAGE
    component: Component = COMPONENT_GPU


class OpenRun(_Wire):
    """An agent starts streaming a run: the ``open_run`` payload."""

    run: Name
    stream: StreamId
    started_ms: TimeMs
    simulated: Flag = False
    backend: BackendName = ""
    host: Text = ""
    agent_version: Text = ""
    tags: Annotated[list[Tag], MaxLen(MAX_TAGS)] = []
    gpus: list[OpenRunGpu] = []
    # Where the node runs, when the agent was told: for the app's carbon accounting.
    zone: Annotated[Zone | None, Expect("a grid zone id such as SE-SE3, or null")] = None
    region: Annotated[Region | None, Expect("a cloud region such as aws:eu-north-1, or null")] = None


class CloseRun(_Wire):
    """An agent finished its stream: the ``close_run`` payload."""

    run: Name
    stream: StreamId
    ended_ms: TimeMs
    last_seq: OptionalCount = None  # null: the stream sent no batch
    samples_sent: OptionalCount = None
    # The run's units of work as this process saw them (global counts, as frameworks give them); absent from
    # older agents, and ignored by older apps (unknown keys are).
    work: dict[WorkUnit, WorkCount] = {}


class StageProfile(_Wire):
    """A per-stage Perseus profile for the planner: the ``stage_profile`` payload.

    The CSV's content is the planner's to judge: the agent checks it with :mod:`wattwise_agent.profile_csv`, the
    app parses it with its planner; here it only has to be text.
    """

    run: OptionalName = None
    name: Name
    csv: CsvText
    gpu_name: OptionalName = None
    p_blocking_w: PowerW = None
    recorded_ms: TimeMs


PAYLOADS: dict[str, type[_Wire]] = {
    KIND_BATCH: Batch,
    KIND_OPEN_RUN: OpenRun,
    KIND_CLOSE_RUN: CloseRun,
    KIND_STAGE_PROFILE: StageProfile,
}


def decode_batch(payload: Any) -> Batch:
    """Validate a batch payload completely and return it with its columns as arrays."""
    return parse(Batch, payload)


# --- sealing and opening envelopes ---------------------------------------------------------------


class BadSignature(WireError):
    """The envelope's signature is not the one the key makes: another token signed it, or it was altered."""


def signing_key(token: str) -> bytes:
    """Derive the HMAC key from a token. The app stores only this key, never the token."""
    return hashlib.sha256(b"wattwise-hmac-v1:" + token.encode()).digest()


def key_id(token: str) -> str:
    """The token's public key id, sent in every envelope so the app can find the token that signed it.

    Derived with its own prefix, so it reveals nothing of the signing key.
    """
    return hashlib.sha256(b"wattwise-key-id-v1:" + token.encode()).hexdigest()[:KEY_ID_CHARS]


def _mac(key: bytes, kind: str, node: str, body: str) -> str:
    message = f"{WIRE_VERSION}\n{kind}\n{node}\n".encode() + body.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def seal(kind: str, node: str, payload: Mapping[str, Any], token: str, *, check: bool = True) -> dict[str, Any]:
    """Wrap a payload in an envelope signed with ``token``'s key and naming its key id, ready to publish.

    The payload and envelope are first checked with the same models the app reads them with, so the
    agent refuses (with the app's message) what the app would reject. ``check=False`` signs anything:
    for tests that need a message the app must refuse.
    """
    if kind not in TASKS_BY_KIND:
        raise WireError(f"unknown message kind {kind!r}")
    if check:
        parse(PAYLOADS[kind], payload)
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    envelope = {"v": WIRE_VERSION, "kind": kind, "node": node, "key": key_id(token), "body": body,
                "sig": _mac(signing_key(token), kind, node, body)}
    if check:
        read_envelope(envelope)
    return envelope


def read_envelope(message: Any) -> Envelope:
    """Check an envelope's shape (version, kind, node name, body size), not yet its signature."""
    return parse(Envelope, message, what="message")


def open_envelope(envelope: Envelope | Mapping[str, Any], kind: str, key: bytes) -> dict[str, Any]:
    """Check an envelope's kind and signature and return its decoded (not yet validated) payload.

    Raises :class:`BadSignature` when ``key`` did not sign it, :class:`WireError` for anything else.
    """
    if not isinstance(envelope, Envelope):
        envelope = read_envelope(envelope)
    if envelope.kind != kind:
        raise WireError(f"expected a {kind!r} message, got {envelope.kind!r}")
    if not hmac.compare_digest(_mac(key, envelope.kind, envelope.node, envelope.body), envelope.sig):
        raise BadSignature("bad signature: the message was not signed with this node's token")
    try:
        payload = json_value(envelope.body)
    except ValueError as exc:
        raise WireError(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise WireError("body nests deeper than a JSON reader can follow (a payload nests 4 levels)") from None
    if not isinstance(payload, dict):
        raise WireError("body is not a JSON object")
    return payload


def _reject_constant(name: str) -> Any:
    raise WireError(f"{name} is not a valid number")


def json_value(text: str | bytes, *, allow_nan: bool = False) -> Any:
    """``json.loads`` through pydantic's compiled reader: 2.4 times faster on a batch body, which the app reads
    thousands of times a second. NaN and the infinities are refused (:class:`WireError`) unless ``allow_nan``.

    Whatever that reader refuses (an unpaired surrogate, escaped or not; nesting deeper than it follows; a NaN;
    any malformed text) is read again by ``json.loads``, so errors are ``json.loads``'s, and so is every value
    accepted, as far as the tests (``tests/agents/test_wire_json.py``) and a fuzzing of pydantic-core 2.16.1
    and 2.50 found; the one known difference: pydantic-core 2.16 reads an integer of 4,301 digits that
    ``json.loads`` refuses (Python's 4,300-digit limit), which the wire's ranges then refuse.
    """
    try:
        return from_json(text, allow_inf_nan=allow_nan)
    except (ValueError, TypeError):  # TypeError: a str holding an unpaired surrogate
        return json.loads(text) if allow_nan else json.loads(text, parse_constant=_reject_constant)


# --- building payloads (the agent's side) --------------------------------------------------------


def gpu_payload(
    *,
    uuid: str,
    index: int,
    name: str,
    energy_source: str,
    power_field: str,
    prev: tuple[int, int] | None,
    columns: Mapping[str, Sequence[int]],
    component: str = COMPONENT_GPU,
    power_limit_mw: int | None = None,
) -> dict[str, Any]:
    """Build one device's entry of a batch payload (the JSON form of :class:`GpuWindow`).

    ``component`` is sent only for what is not a GPU, and ``power_limit_mw`` only when known, so a GPU's entry
    reads as it did before them.
    """
    entry: dict[str, Any] = {
        "uuid": uuid,
        "index": index,
        "name": name,
        "energy_source": energy_source,
        "power_field": power_field,
        "prev_t_ms": prev[0] if prev else None,
        "prev_energy_mj": prev[1] if prev else None,
    }
    if component != COMPONENT_GPU:
        entry["component"] = component
    if power_limit_mw is not None:
        entry["power_limit_mw"] = power_limit_mw
    for key in SAMPLE_COLUMNS:
        entry[key] = [int(v) for v in columns[key]]
    return entry


def event_payload(t_ms: int, kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A marker as the agent sends it: its kind and text values cut to the name limit, then checked."""
    event: dict[str, Any] = {"t_ms": int(t_ms), "kind": str(kind)[:MAX_NAME_CHARS]}
    for key, value in fields.items():
        if key not in ("t_ms", "kind"):
            event[str(key)] = value[:MAX_NAME_CHARS] if isinstance(value, str) else value
    parse(Event, event, what="event")
    return event

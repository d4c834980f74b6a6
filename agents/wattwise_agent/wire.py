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
               "t_ms": [...], "energy_mj": [...], "power_mw": [...],
               "sm_clock_mhz": [...], "util_pct": [...], "temp_c": [...]}],
     "events": [{"t_ms": 1700000001234, "kind": "step_end", "step": 12}]}

An entry may measure a CPU package or its DRAM rather than a GPU (Linux RAPL): it then says so with
``"component": "cpu" | "dram"`` (absent: ``"gpu"``, as every agent before components sends), its
``energy_mj`` is the agent's unwrapped RAPL counter, its ``power_mw`` the mean over the interval before
each reading (``power_field: "average"``), and its clock, utilisation and temperature columns are zeros.

``energy_mj`` is the GPU's raw cumulative counter (``nvmlDeviceGetTotalEnergyConsumption``, modulo
``ENERGY_MODULUS_MJ``), or, for GPUs without one, the agent's own running trapezoid integral of power
(``energy_source`` says which). Energy is counted between readings by :func:`counter_step_mj`.
``prev_energy_mj`` / ``prev_t_ms`` repeat the last reading of the stream's previous window, so every
window's energy is a self-contained counter difference: totals are exact sums of windows, whatever
order windows arrive in. ``(node, stream, seq)`` identifies a batch; delivering it twice is harmless.

A ``stage_profile`` payload carries a per-stage profile recorded by the torch hooks, for the planner:

    {"run": "gpt3-pretrain" | null, "name": "<profile name>", "csv": "<Perseus CSV text:
     stage,instruction,frequency,time,energy>", "gpu_name": "NVIDIA A100-SXM4-80GB",
     "p_blocking_w": 83.6 | null, "recorded_ms": 1700000000000}

Sample columns stay cheap to check (ingest sees tens of thousands of samples a second): each column is
validated in pydantic's compiled core, element types and ranges at once, then held as an ``int64``
numpy array; only the few checks across a column (time increases, samples lie in the window) run in
Python, on the arrays. ``benchmarks/bench_wire.py`` measures the cost.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Aliases evaluated at import use Optional and Union: `X | None` needs Python 3.10 there.
from typing import Annotated, Any, Final, Literal, Optional, Union

import numpy as np
from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema

# Both sides import these from here, with the models.
from wattwise_agent.wire_errors import Expect as Expect
from wattwise_agent.wire_errors import WireError as WireError
from wattwise_agent.wire_errors import check_field as check_field
from wattwise_agent.wire_errors import parse as parse
from wattwise_agent.wire_errors import rule

WIRE_VERSION = 1

# The kinds of message, each published as its own task. The app records refusals by these kinds.
KIND_BATCH: Final = "batch"
KIND_OPEN_RUN: Final = "open_run"
KIND_CLOSE_RUN: Final = "close_run"
KIND_STAGE_PROFILE: Final = "stage_profile"
TASK_INGEST_BATCH = "wattwise.ingest_batch"
TASK_OPEN_RUN = "wattwise.open_run"
TASK_CLOSE_RUN = "wattwise.close_run"
TASK_STAGE_PROFILE = "wattwise.stage_profile"
TASKS_BY_KIND = {
    KIND_BATCH: TASK_INGEST_BATCH,
    KIND_OPEN_RUN: TASK_OPEN_RUN,
    KIND_CLOSE_RUN: TASK_CLOSE_RUN,
    KIND_STAGE_PROFILE: TASK_STAGE_PROFILE,
}
TELEMETRY_QUEUE = "telemetry"

# What a GPU's energy_mj column holds: its own cumulative counter, or (for GPUs without one) the agent's
# running integral of power, which the app flags as estimated.
ENERGY_COUNTER: Final = "counter"
POWER_INTEGRATION: Final = "power_integration"
ENERGY_SOURCES = (ENERGY_COUNTER, POWER_INTEGRATION)
# Which NVML power reading a GPU's power_mw column holds.
POWER_INSTANT: Final = "instant"
POWER_AVERAGE: Final = "average"
POWER_FIELDS = (POWER_INSTANT, POWER_AVERAGE)
# What part of the node a device's entry measures: a GPU (entries without the field, from agents before
# components), a CPU package or its DRAM (Linux RAPL, wattwise_agent.backends.rapl). A run's energy is the
# sum over every component; pages that speak of GPUs show only GPUs.
COMPONENT_GPU: Final = "gpu"
COMPONENT_CPU: Final = "cpu"
COMPONENT_DRAM: Final = "dram"
COMPONENTS = (COMPONENT_GPU, COMPONENT_CPU, COMPONENT_DRAM)

# Limits both sides agree on. The agent splits windows to stay under them; the app rejects above them.
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_SAMPLES_PER_BATCH = 200_000
MAX_GPUS_PER_BATCH = 64
MAX_EVENTS_PER_BATCH = 10_000
MAX_NAME_CHARS = 200
MAX_TAG_CHARS = 64
MAX_TAGS = 100
MAX_P_BLOCKING_W = 10_000.0
"""Exclusive upper bound on P_blocking in W (a GPU waiting on communication draws far less)."""
MAX_MS = 2**53
"""Timestamps are Unix milliseconds below 2**53, exact as JSON numbers in any language."""
ENERGY_MODULUS_MJ = 2**63
"""Energy counters travel modulo 2**63. NVML's counter is an unsigned 64-bit count of mJ, but the wire's
columns and the app's are signed 64-bit integers, so the agent sends ``counter % 2**63`` (a counter that
passes 2**63, or wraps at 2**64, wraps at 2**63 on the wire: the same rule covers both)."""
MAX_WRAP_STEP_MJ = 2**32
"""A counter that steps back wrapped around only if, counted forwards modulo ``ENERGY_MODULUS_MJ``, it moved
at most this far (4.3 MJ: over an hour of a 1 kW GPU, more than any sampling interval holds), that is
from within this distance of the top to a small value. Any other step back is a reset (driver reload)."""

# Columns sent per GPU, with the integer range each must fit (they are stored as fixed-width ints).
SAMPLE_COLUMNS: dict[str, tuple[int, int]] = {
    "t_ms": (0, MAX_MS),
    "energy_mj": (0, ENERGY_MODULUS_MJ - 1),
    "power_mw": (0, 2**31 - 1),
    "sm_clock_mhz": (0, 2**15 - 1),
    "util_pct": (0, 100),
    "temp_c": (-2**15, 2**15 - 1),
}
# Where the agent says it runs: a grid zone id (``SE-SE3``) and/or a cloud region (``aws:eu-north-1``).
# Only the spelling is checked here; the app's carbon accounting resolves them and says when one is unknown.
ZONE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
REGION_PATTERN = re.compile(r"^(aws|gcp|azure):[A-Za-z0-9][A-Za-z0-9\-]{0,54}$", re.IGNORECASE)
_SIG_PATTERN = re.compile(r"^[0-9a-f]{64}$")
KEY_ID_CHARS = 16
_KEY_ID_PATTERN = re.compile(rf"^[0-9a-f]{{{KEY_ID_CHARS}}}$")


# --- field types: each limit declared once ---------------------------------------------------------


@dataclass(frozen=True)
class IntColumn:
    """A sample column: a list of whole numbers in the column's range, held as an int64 array once read.

    Element types and ranges are checked in pydantic's compiled core; the array is made once, at the end.
    """

    name: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        low, high = SAMPLE_COLUMNS[self.name]
        value = core_schema.custom_error_schema(
            core_schema.int_schema(strict=True, ge=low, le=high),
            custom_error_type="expected",
            custom_error_message=f"expected whole numbers in [{low}, {high}] (wrong units?)",
        )
        return core_schema.no_info_after_validator_function(
            _int64,
            core_schema.list_schema(value, max_length=MAX_SAMPLES_PER_BATCH, strict=True),
            serialization=core_schema.plain_serializer_function_ser_schema(_as_list),
        )


def _int64(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _as_list(array: np.ndarray) -> list[int]:
    return [int(v) for v in array]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("blank")
    return value


def _spelled(pattern: re.Pattern[str]) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError("misspelled")
        return value

    return AfterValidator(check)


_NAME = f"a non-empty string of at most {MAX_NAME_CHARS} characters"
Name = Annotated[str, Strict(), MaxLen(MAX_NAME_CHARS), AfterValidator(_not_blank), Expect(_NAME)]
OptionalName = Annotated[Optional[Name], Expect(f"{_NAME}, or null")]
Text = Annotated[str, Strict(), MaxLen(MAX_NAME_CHARS), Expect(f"a string of at most {MAX_NAME_CHARS} characters")]
Tag = Annotated[str, Strict(), MinLen(1), MaxLen(MAX_TAG_CHARS),
                Expect(f"a non-empty string of at most {MAX_TAG_CHARS} characters")]
Flag = Annotated[bool, Strict(), Expect("true or false")]
Count = Annotated[int, Strict(), Ge(0), Expect("a non-negative integer")]
OptionalCount = Annotated[Optional[Count], Expect("a non-negative integer, or null")]
TimeMs = Annotated[int, Strict(), Ge(0), Lt(MAX_MS), Expect("a Unix time in milliseconds")]
OptionalTimeMs = Annotated[Optional[TimeMs], Expect("a Unix time in milliseconds, or null")]
OptionalCounterMj = Annotated[
    Optional[Annotated[int, Strict(), Ge(0), Lt(ENERGY_MODULUS_MJ)]],
    Expect(f"an energy counter in mJ in [0, {ENERGY_MODULUS_MJ - 1}], or null"),
]
Zone = Annotated[str, Strict(), _spelled(ZONE_PATTERN), Expect("a grid zone id such as SE-SE3")]
# A region's provider is read case-insensitively and kept in lower case.
Region = Annotated[str, Strict(), _spelled(REGION_PATTERN), AfterValidator(str.lower),
                   Expect("a cloud region such as aws:eu-north-1")]
PowerW = Annotated[
    Optional[Annotated[float, Strict(), AllowInfNan(False), Gt(0), Lt(MAX_P_BLOCKING_W)]],
    Expect(f"a positive power in W below {MAX_P_BLOCKING_W:,.0f} W, or null"),
]
EnergySource = Annotated[Literal["counter", "power_integration"], Expect("'counter' or 'power_integration'")]
PowerField = Annotated[Literal["instant", "average"], Expect("'instant' or 'average'")]
Component = Annotated[Literal["gpu", "cpu", "dram"], Expect("'gpu', 'cpu' or 'dram'")]
MessageKind = Literal["batch", "open_run", "close_run", "stage_profile"]
# Units of work a run reports (close_run's ``work``): what energy per unit is figured against.
WORK_UNITS: tuple[str, ...] = ("steps", "samples", "tokens")
WorkUnit = Annotated[Literal["steps", "samples", "tokens"], Expect("'steps', 'samples' or 'tokens'")]
MAX_WORK = 10**18  # a quintillion tokens: past any training run, inside the database's 64-bit integers
WorkCount = Annotated[int, Strict(), Ge(0), Le(MAX_WORK), Expect(f"a whole number from 0 to {MAX_WORK}")]
# The literal types spell the values the named constants above hold: the two must agree.
assert typing.get_args(typing.get_args(EnergySource)[0]) == ENERGY_SOURCES
assert typing.get_args(typing.get_args(PowerField)[0]) == POWER_FIELDS
assert typing.get_args(typing.get_args(Component)[0]) == COMPONENTS
assert set(typing.get_args(MessageKind)) == set(TASKS_BY_KIND)
EventValue = Annotated[
    Union[Annotated[str, Strict(), MaxLen(MAX_NAME_CHARS)], Annotated[int, Strict()],
          Annotated[float, Strict(), AllowInfNan(False)]],
    Expect(f"a string of at most {MAX_NAME_CHARS} characters or a finite number"),
]
CsvText = Annotated[str, Strict(), AfterValidator(_not_blank), Expect("the profile as CSV text")]
Signature = Annotated[str, Strict(), _spelled(_SIG_PATTERN), Expect("a hex HMAC-SHA256 (64 characters)")]
KeyId = Annotated[
    Optional[Annotated[str, Strict(), _spelled(_KEY_ID_PATTERN)]],
    Expect(f"a key id ({KEY_ID_CHARS} hex digits), or absent"),
]


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
        return body


# --- batch ----------------------------------------------------------------------------------------


class Event(_Wire):
    """A marker (a step ended, a stage began) at an instant of the batch's window; extra fields are its data."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, EventValue]

    t_ms: TimeMs
    kind: Name

    @property
    def fields(self) -> dict[str, str | int | float]:
        return dict(self.model_extra or {})


class GpuWindow(_Wire):
    """One GPU's samples within one batch window; the columns are int64 numpy arrays once read."""

    uuid: Name
    index: Count
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

    def energy_deltas_mj(self) -> np.ndarray:
        """Energy of each interval ending at a sample in this window, in mJ.

        The first interval starts at the previous window's last reading, when there is one; a counter
        that steps back wrapped around or was reset (:func:`counter_step_mj`).
        """
        return window_deltas_mj(self.energy_mj, self.prev_energy_mj)


def window_deltas_mj(energy_mj: np.ndarray, prev_energy_mj: int | None) -> np.ndarray:
    """:meth:`GpuWindow.energy_deltas_mj` of a window's ``energy_mj`` column (int64) and its previous reading:
    the app's totals and the agent's own summary (``wattwise_agent.run_energy``) both count energy so."""
    readings = energy_mj
    if prev_energy_mj is not None:
        readings = np.concatenate(([prev_energy_mj], readings))
    deltas = counter_steps_mj(readings)
    if prev_energy_mj is None:
        deltas = np.concatenate(([0], deltas))
    return deltas


def counter_step_mj(before: int, after: int) -> int:
    """The energy between two readings of a cumulative energy counter, in mJ: THE rule, on both sides.

    Readings are taken modulo ``ENERGY_MODULUS_MJ`` (the agent sends them so; a raw NVML value may be
    larger). Forwards, the difference. Backwards, the counter either wrapped around, when it went from
    near the top to a small value (counted forwards, modulo, it moved at most ``MAX_WRAP_STEP_MJ``): the
    distance counted forwards; or it was reset (driver reload): the new value, counted from zero, never a
    negative energy.
    """
    before, after = before % ENERGY_MODULUS_MJ, after % ENERGY_MODULUS_MJ
    if after >= before:
        return after - before
    forwards = after + ENERGY_MODULUS_MJ - before
    return forwards if forwards <= MAX_WRAP_STEP_MJ else after


def counter_steps_mj(readings: np.ndarray) -> np.ndarray:
    """:func:`counter_step_mj` between consecutive readings (an int64 array of wire values, each in
    ``[0, ENERGY_MODULUS_MJ)``): one value fewer than readings."""
    steps = np.diff(readings)
    for i in np.flatnonzero(steps < 0).tolist():  # rare: a reset or a wrap
        steps[i] = counter_step_mj(int(readings[i]), int(readings[i + 1]))
    return steps


class Batch(_Wire):
    """One node's window of samples: the ``batch`` payload."""

    run: Name
    stream: Name
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
    index: Count
    name: Text = ""
    energy_source: EnergySource
    power_field: PowerField = POWER_AVERAGE
    component: Component = COMPONENT_GPU


class OpenRun(_Wire):
    """An agent starts streaming a run: the ``open_run`` payload."""

    run: Name
    stream: Name
    started_ms: TimeMs
    simulated: Flag = False
    backend: Text = ""
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
    stream: Name
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
        payload = json.loads(envelope.body, parse_constant=_reject_constant)
    except ValueError as exc:
        raise WireError(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WireError("body is not a JSON object")
    return payload


def _reject_constant(name: str) -> Any:
    raise WireError(f"{name} is not a valid number")


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
) -> dict[str, Any]:
    """Build one device's entry of a batch payload (the JSON form of :class:`GpuWindow`).

    ``component`` is sent only for what is not a GPU, so a GPU's entry reads as it did before components.
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

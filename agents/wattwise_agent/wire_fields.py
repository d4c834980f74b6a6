"""The wire's vocabulary and field types: every limit declared once, matching the app's columns.

``wattwise_agent.wire`` builds its models from these types and re-exports them. A limit is the range the
column that stores the field holds (a ``bigint``, an ``integer``, a ``varchar(64)``), so a message that passes
the models can always be stored; strings hold no NUL and no unpaired surrogate (PostgreSQL text and UTF-8 can
hold neither).
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass

# Aliases evaluated at import use Optional and Union: `X | None` needs Python 3.10 there.
from typing import Annotated, Any, Final, Literal, Optional, Union

import numpy as np
from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import AfterValidator, AllowInfNan, GetCoreSchemaHandler, Strict
from pydantic_core import core_schema

from wattwise_agent.wire_energy import ENERGY_MODULUS_MJ
from wattwise_agent.wire_errors import Expect, rule

__all__ = [  # re-exported by wattwise_agent.wire
    "COMPONENTS",
    "COMPONENT_CPU",
    "COMPONENT_DRAM",
    "COMPONENT_GPU",
    "ENERGY_COUNTER",
    "ENERGY_SOURCES",
    "KEY_ID_CHARS",
    "KIND_BATCH",
    "KIND_CLOSE_RUN",
    "KIND_OPEN_RUN",
    "KIND_STAGE_PROFILE",
    "MAX_BACKEND_CHARS",
    "MAX_BIGINT",
    "MAX_BODY_BYTES",
    "MAX_EVENTS_PER_BATCH",
    "MAX_GPUS_PER_BATCH",
    "MAX_INDEX",
    "MAX_MS",
    "MAX_NAME_CHARS",
    "MAX_POWER_MW",
    "MAX_P_BLOCKING_W",
    "MAX_SAMPLES_PER_BATCH",
    "MAX_STREAM_CHARS",
    "MAX_TAGS",
    "MAX_TAG_CHARS",
    "MAX_WORK",
    "POWER_AVERAGE",
    "POWER_FIELDS",
    "POWER_INSTANT",
    "POWER_INTEGRATION",
    "REGION_PATTERN",
    "SAMPLE_COLUMNS",
    "TASKS_BY_KIND",
    "TASK_CLOSE_RUN",
    "TASK_INGEST_BATCH",
    "TASK_OPEN_RUN",
    "TASK_STAGE_PROFILE",
    "TELEMETRY_QUEUE",
    "WIRE_VERSION",
    "WORK_UNITS",
    "ZONE_PATTERN",
    "BackendName",
    "Component",
    "Count",
    "CsvText",
    "DeviceIndex",
    "EnergySource",
    "EventValue",
    "Flag",
    "IntColumn",
    "KeyId",
    "MessageKind",
    "Name",
    "OptionalCount",
    "OptionalCounterMj",
    "OptionalName",
    "OptionalPowerLimitMw",
    "OptionalTimeMs",
    "PowerField",
    "PowerW",
    "Region",
    "Signature",
    "Storable",
    "StreamId",
    "Tag",
    "Text",
    "TimeMs",
    "WorkCount",
    "WorkUnit",
    "Zone",
]

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
MAX_MS = 253_402_300_800_000
"""Timestamps are Unix milliseconds before the year 10000 (10000-01-01T00:00Z): what a date in Python and in
the app's columns can hold, and exact as a JSON number in any language."""
MAX_BIGINT = 2**63 - 1
"""The largest count (a batch's ``seq``, a sample count) a ``bigint`` column holds."""
MAX_INDEX = 2**31 - 1
"""The largest device index an ``integer`` column holds."""
MAX_STREAM_CHARS = 64
"""An agent session id, as the app's ``stream`` columns hold it."""
MAX_BACKEND_CHARS = 32
"""A backend's name (``nvml``, ``simulated``), as the app's column holds it."""
MAX_POWER_MW = 2**31 - 1

# Columns sent per GPU, with the integer range each must fit (they are stored as fixed-width ints).
SAMPLE_COLUMNS: dict[str, tuple[int, int]] = {
    "t_ms": (0, MAX_MS - 1),
    "energy_mj": (0, ENERGY_MODULUS_MJ - 1),
    "power_mw": (0, MAX_POWER_MW),
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


def _storable(value: str) -> str:
    """Refuse what no text column can store: NUL (PostgreSQL text) and unpaired surrogates (not UTF-8)."""
    if "\x00" in value:
        raise rule("contains a NUL character")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise rule("contains an unpaired surrogate") from None
    return value


# After Expect, so its own message reads as it is rather than as "expected ...".
Storable = AfterValidator(_storable)
_NAME = f"a non-empty string of at most {MAX_NAME_CHARS} characters"
Name = Annotated[str, Strict(), MaxLen(MAX_NAME_CHARS), AfterValidator(_not_blank), Expect(_NAME), Storable]
OptionalName = Annotated[Optional[Name], Expect(f"{_NAME}, or null")]
_STREAM = f"a non-empty string of at most {MAX_STREAM_CHARS} characters"
StreamId = Annotated[str, Strict(), MaxLen(MAX_STREAM_CHARS), AfterValidator(_not_blank), Expect(_STREAM), Storable]
Text = Annotated[str, Strict(), MaxLen(MAX_NAME_CHARS), Expect(f"a string of at most {MAX_NAME_CHARS} characters"),
                 Storable]
BackendName = Annotated[str, Strict(), MaxLen(MAX_BACKEND_CHARS),
                        Expect(f"a string of at most {MAX_BACKEND_CHARS} characters"), Storable]
Tag = Annotated[str, Strict(), MinLen(1), MaxLen(MAX_TAG_CHARS),
                Expect(f"a non-empty string of at most {MAX_TAG_CHARS} characters"), Storable]
Flag = Annotated[bool, Strict(), Expect("true or false")]
Count = Annotated[int, Strict(), Ge(0), Le(MAX_BIGINT), Expect("a non-negative integer below 2**63")]
OptionalCount = Annotated[Optional[Count], Expect("a non-negative integer below 2**63, or null")]
DeviceIndex = Annotated[int, Strict(), Ge(0), Le(MAX_INDEX), Expect("a device index below 2**31")]
TimeMs = Annotated[int, Strict(), Ge(0), Lt(MAX_MS), Expect("a Unix time in milliseconds before the year 10000")]
OptionalTimeMs = Annotated[Optional[TimeMs], Expect("a Unix time in milliseconds before the year 10000, or null")]
OptionalPowerLimitMw = Annotated[
    Optional[Annotated[int, Strict(), Ge(1), Le(MAX_POWER_MW)]],
    Expect(f"a power limit in mW in [1, {MAX_POWER_MW}], or absent"),
]
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
    Union[Annotated[str, Strict(), MaxLen(MAX_NAME_CHARS)], Annotated[int, Strict(), Ge(-MAX_BIGINT - 1), Le(MAX_BIGINT)],
          Annotated[float, Strict(), AllowInfNan(False)]],
    Expect(f"a string of at most {MAX_NAME_CHARS} characters or a finite number"),
    AfterValidator(lambda value: _storable(value) if isinstance(value, str) else value),
]
CsvText = Annotated[str, Strict(), AfterValidator(_not_blank), Expect("the profile as CSV text"), Storable]
Signature = Annotated[str, Strict(), _spelled(_SIG_PATTERN), Expect("a hex HMAC-SHA256 (64 characters)")]
KeyId = Annotated[
    Optional[Annotated[str, Strict(), _spelled(_KEY_ID_PATTERN)]],
    Expect(f"a key id ({KEY_ID_CHARS} hex digits), or absent"),
]

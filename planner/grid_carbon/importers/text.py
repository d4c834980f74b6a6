"""Turning uploaded bytes into text, with a size limit and a clear error for the wrong encoding."""

from __future__ import annotations

import json
import math
from typing import Any

from planner.grid_carbon.importers.errors import CarbonImportError

MAX_IMPORT_BYTES = 64 * 1024 * 1024
"""A year of 5-minute data for one zone is ~10 MB; anything above this is refused, not parsed."""


def decode_text(data: bytes | str, format_name: str) -> str:
    """UTF-8 (with or without BOM) bytes or an already-decoded string → text."""
    if isinstance(data, str):
        if len(data) > MAX_IMPORT_BYTES:
            raise CarbonImportError(format_name, f"file larger than {MAX_IMPORT_BYTES} bytes")
        return data.removeprefix("\ufeff")
    if len(data) > MAX_IMPORT_BYTES:
        raise CarbonImportError(format_name, f"file larger than {MAX_IMPORT_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CarbonImportError(format_name, f"not UTF-8 text (byte {exc.start})") from None


def load_json(data: bytes | str | Any, format_name: str) -> Any:
    """Parse JSON bytes/text; an already-parsed object (dict or list) is passed through."""
    if isinstance(data, dict | list):
        return data
    text = decode_text(data, format_name)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise CarbonImportError(
            format_name, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:
        raise CarbonImportError(format_name, str(exc)) from None


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity, which no grid-data API sends; refuse them as data errors.
    raise ValueError(f"JSON contains {name}, which is not a valid intensity")


def csv_number(text: str, format_name: str, line: int, field: str, *, required: bool) -> float | None:
    """A CSV cell as a finite, non-negative number; blank is None unless ``required``."""
    if not text:
        if required:
            raise CarbonImportError(format_name, "missing value", line=line, field=field)
        return None
    try:
        value = float(text)
    except ValueError:
        raise CarbonImportError(format_name, f"not a number: {text!r}", line=line, field=field) from None
    if math.isnan(value) or math.isinf(value):
        raise CarbonImportError(format_name, f"not a finite number: {text!r}", line=line, field=field)
    if value < 0:
        raise CarbonImportError(format_name, f"negative value {text}", line=line, field=field)
    return value

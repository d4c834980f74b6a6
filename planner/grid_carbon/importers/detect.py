"""Pick the parser for an uploaded file by looking at its content (the file name is only a hint)."""

from __future__ import annotations

import csv
import io
from enum import StrEnum
from typing import Any

from planner.grid_carbon.importers.codecarbon import looks_like_codecarbon_csv
from planner.grid_carbon.importers.electricitymaps_csv import (
    looks_like_electricitymaps_csv,
    parse_electricitymaps_csv,
)
from planner.grid_carbon.importers.electricitymaps_json import (
    looks_like_electricitymaps_json,
    parse_electricitymaps_json,
)
from planner.grid_carbon.importers.errors import CarbonImportError
from planner.grid_carbon.importers.text import decode_text, load_json
from planner.grid_carbon.importers.uk_carbon_intensity import (
    looks_like_uk_json,
    parse_uk_carbon_intensity_json,
)
from planner.grid_carbon.importers.watttime import looks_like_watttime_json, parse_watttime_json
from planner.grid_carbon.records import IntensityRecord

FORMAT = "file import"


class ImportFormat(StrEnum):
    """The formats Wattwise can import."""

    ELECTRICITYMAPS_CSV = "electricitymaps_csv"
    ELECTRICITYMAPS_JSON = "electricitymaps_json"
    UK_CARBON_INTENSITY_JSON = "uk_carbon_intensity_json"
    WATTTIME_JSON = "watttime_json"
    CODECARBON_CSV = "codecarbon_csv"


def detect_format(data: bytes | str, filename: str | None = None) -> ImportFormat:
    """Return the format of ``data``, or raise :class:`CarbonImportError` if it is none we know."""
    text = decode_text(data, FORMAT).lstrip()
    if not text:
        raise CarbonImportError(FORMAT, "the file is empty")
    if text[0] in "{[":
        payload = load_json(text, FORMAT)
        return _json_format(payload, filename)
    header = next(csv.reader(io.StringIO(text)), [])
    if looks_like_electricitymaps_csv(header):
        return ImportFormat.ELECTRICITYMAPS_CSV
    if looks_like_codecarbon_csv(header):
        return ImportFormat.CODECARBON_CSV
    name = f" {filename!r}" if filename else ""
    raise CarbonImportError(
        FORMAT,
        f"unrecognised file{name}: the first line is neither an Electricity Maps nor a CodeCarbon CSV header, "
        "and it is not JSON",
        line=1,
    )


def _json_format(payload: Any, filename: str | None) -> ImportFormat:
    if looks_like_watttime_json(payload):
        return ImportFormat.WATTTIME_JSON
    if looks_like_electricitymaps_json(payload):
        return ImportFormat.ELECTRICITYMAPS_JSON
    if looks_like_uk_json(payload):
        return ImportFormat.UK_CARBON_INTENSITY_JSON
    name = f" {filename!r}" if filename else ""
    raise CarbonImportError(
        FORMAT, f"unrecognised JSON{name}: not an Electricity Maps, UK Carbon Intensity or WattTime response"
    )


def import_intensity_file(
    data: bytes | str, filename: str | None = None, *, zone: str | None = None
) -> list[IntensityRecord]:
    """Detect the format and parse a grid-intensity file with default options (all or nothing).

    CodeCarbon files hold runs, not intensities: use :func:`parse_codecarbon_csv` for them.
    """
    found = detect_format(data, filename)
    if found is ImportFormat.ELECTRICITYMAPS_CSV:
        return parse_electricitymaps_csv(data, filename=filename, zone=zone)
    if found is ImportFormat.ELECTRICITYMAPS_JSON:
        return parse_electricitymaps_json(data, zone=zone)
    if found is ImportFormat.UK_CARBON_INTENSITY_JSON:
        return parse_uk_carbon_intensity_json(data, zone=zone)
    if found is ImportFormat.WATTTIME_JSON:
        return parse_watttime_json(data, zone=zone)
    raise CarbonImportError(
        FORMAT, "this is a CodeCarbon emissions.csv (runs, not intensities); use parse_codecarbon_csv"
    )

"""Importing a stored file in constant memory: what background import jobs and ``import_intensity`` run.

An Electricity Maps CSV (the one format that comes by the hundred thousand rows: a year of 5-minute data,
or many zones) is read as a stream: parsed and checked line by line
(:func:`planner.grid_carbon.importers.electricitymaps_stream.stream_electricitymaps_csv`) and stored in
chunks of :data:`CHUNK_ROWS` rows, all inside one transaction, so a bad line anywhere rolls back every
chunk written before it: all or nothing, as :func:`planner.carbon.imports.import_file`. The other formats
(JSON responses, CodeCarbon files) are read whole, as before.

``progress(rows, bytes)`` is called after each chunk with the rows read and the bytes of the file read so far.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from django.db import IntegrityError, transaction

from planner.carbon.imports import (
    DEFAULT_OPTIONS,
    FORMAT_LABELS,
    ImportOptions,
    ImportResult,
    close_batch,
    import_file,
    new_import,
)
from planner.carbon.models import IntensityRow
from planner.carbon.stored import canonical_zone, upsert_records
from planner.grid_carbon import IntensityRecord
from planner.grid_carbon.importers import CarbonImportError, ImportFormat, detect_format
from planner.grid_carbon.importers.electricitymaps_stream import stream_electricitymaps_csv
from planner.grid_carbon.importers.text import MAX_IMPORT_BYTES

CHUNK_ROWS = 5000
"""Rows stored per statement batch: memory is bounded by this, not by the file."""

HEAD_BYTES = 64 * 1024
"""How much of a file is read to tell an Electricity Maps CSV (by its header line) from the rest."""

Progress = Callable[[int, int], None]


class CountingReader(io.RawIOBase):
    """A binary file read through: counts the bytes and hashes them (the import records the file's SHA-256)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.bytes_read, self.sha256 = raw, 0, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        self.sha256.update(data)
        return len(data)


def import_path(
    path: Path, filename: str, options: ImportOptions = DEFAULT_OPTIONS, *, progress: Progress | None = None
) -> ImportResult:
    """Import the file at ``path`` as ``options.project``'s (``None``: shared); raise ``CarbonImportError``
    (nothing written) if it is bad."""
    size = path.stat().st_size
    if size > MAX_IMPORT_BYTES:
        raise CarbonImportError("file import", f"file larger than {MAX_IMPORT_BYTES} bytes")
    with path.open("rb") as raw:
        if not _is_electricitymaps_csv(raw.read(HEAD_BYTES), filename):
            raw.seek(0)
            result = import_file(raw.read(), filename, options)
            if progress:
                progress(result.rows, size)
            return result
        raw.seek(0)
        reader = CountingReader(raw)
        text = io.TextIOWrapper(io.BufferedReader(reader), encoding="utf-8-sig", newline="")
        override = canonical_zone(options.zone) if options.zone else None
        records = stream_electricitymaps_csv(text, filename=filename, basis=options.basis, zone=override)
        return _store(_canonical(records, override), filename, reader, options, progress)


def _is_electricitymaps_csv(head: bytes, filename: str) -> bool:
    """Whether the file's first line is an Electricity Maps header (else it is read whole, and that
    import names whatever is wrong with it)."""
    first_line = head.split(b"\n", 1)[0]
    if first_line.lstrip()[:1] in (b"{", b"[") or len(first_line) == len(head) == HEAD_BYTES:
        return False
    try:
        return detect_format(first_line, filename) is ImportFormat.ELECTRICITYMAPS_CSV
    except CarbonImportError:
        return False


def _canonical(records: Iterable[IntensityRecord], override: str | None) -> Iterator[IntensityRecord]:
    """Zones spelled as the embedded data spells them (looked up once per zone)."""
    spelled: dict[str, str] = {}
    for record in records:
        if override is None:
            if record.zone not in spelled:
                spelled[record.zone] = canonical_zone(record.zone)
            if spelled[record.zone] != record.zone:
                record = replace(record, zone=spelled[record.zone])
        yield record


def _chunks(records: Iterator[IntensityRecord]) -> Iterator[list[IntensityRecord]]:
    while chunk := list(islice(records, CHUNK_ROWS)):
        yield chunk


def _store(
    records: Iterator[IntensityRecord], filename: str, reader: CountingReader, options: ImportOptions,
    progress: Progress | None,
) -> ImportResult:
    fmt = FORMAT_LABELS[ImportFormat.ELECTRICITYMAPS_CSV]
    project_id = options.project.pk if options.project else None
    try:
        with transaction.atomic():
            batch = new_import(fmt, filename, "", options.user, options.via, options.project)
            result = ImportResult(fmt, filename, 0, 0, 0, 0)
            zones: set[str] = set()
            for chunk in _chunks(records):
                counts = upsert_records(chunk, origin=IntensityRow.Origin.FILE, imported=batch, project_id=project_id)
                _add(result, chunk, counts.created, counts.updated, counts.unchanged)
                zones.update(r.zone for r in chunk)
                if progress:
                    progress(result.rows, reader.bytes_read)
            result.zones = sorted(zones)
            batch.sha256 = reader.sha256.hexdigest()
            return close_batch(batch, result, project_id)
    except UnicodeDecodeError:
        raise CarbonImportError(fmt, f"not UTF-8 text (in the first {reader.bytes_read} bytes)") from None
    except IntegrityError:
        raise CarbonImportError(fmt, "another import wrote the same rows at the same moment; import again") from None


def _add(result: ImportResult, chunk: list[IntensityRecord], created: int, updated: int, unchanged: int) -> None:
    first, last = min(r.start_utc for r in chunk), max(r.start_utc for r in chunk)
    result.rows += len(chunk)
    result.created, result.updated, result.unchanged = (
        result.created + created, result.updated + updated, result.unchanged + unchanged
    )
    result.first_utc = first if result.first_utc is None else min(result.first_utc, first)
    result.last_utc = last if result.last_utc is None else max(result.last_utc, last)


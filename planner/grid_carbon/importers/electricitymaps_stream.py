"""Electricity Maps CSV exports read as a stream: records out as the lines come in, in constant memory.

The whole-file parser (:mod:`.electricitymaps_csv`) sorts rows before it checks them, so it holds every
row; a 60 MB export is ~900,000 of them. This reader checks the same rules as it goes, keeping only the
last row (or, for 5-minute exports, the current hour) of each zone:

* rows must be in time order within each zone, as Electricity Maps exports are (zones may interleave);
  a row earlier than its zone's last one is an error naming both lines;
* the same zone and period twice: identical rows are kept once, rows that disagree are an error;
* a gap in a zone's series is an error naming where (nothing is interpolated);
* granularity comes from the ``granularity`` argument, else the file name, else the spacing of the first
  zone with two rows (the rows read until then are held: at most :data:`MAX_HELD_ROWS`).

It raises :class:`CarbonImportError` at the first problem, possibly after yielding records: the caller
writes them in a transaction it rolls back on error.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from planner.grid_carbon.hours import floor_to_hour, format_hour
from planner.grid_carbon.importers.electricitymaps_csv import (
    _FILENAME,
    FORMAT,
    SOURCE,
    _granularity,
    _hour_record,
    _map_header,
    _parse_row,
)
from planner.grid_carbon.importers.errors import CarbonImportError
from planner.grid_carbon.importers.series import Point, check_period_start, next_period
from planner.grid_carbon.records import Basis, Granularity, IntensityRecord

MAX_HELD_ROWS = 10_000
"""Rows held while the granularity is inferred from their spacing (a named file needs none)."""

FIVE_MINUTES = timedelta(minutes=5)

Row = tuple[int, datetime, str, float, float | None, float | None, bool]


def stream_electricitymaps_csv(
    lines: Iterable[str],
    *,
    filename: str | None = None,
    basis: Basis = "lifecycle",
    granularity: Granularity | None = None,
    zone: str | None = None,
) -> Iterator[IntensityRecord]:
    """Yield the records of an Electricity Maps CSV read line by line (text, the BOM removed)."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise CarbonImportError(FORMAT, "the file is empty")
    columns = _map_header(header)
    wanted = "ci_lifecycle" if basis == "lifecycle" else "ci_direct"
    if wanted not in columns:
        label = "LCA / Life cycle" if basis == "lifecycle" else "direct"
        raise CarbonImportError(FORMAT, f"no 'Carbon intensity gCO₂eq/kWh ({label})' column", line=1)

    def rows() -> Iterator[Row]:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise CarbonImportError(FORMAT, f"expected {len(header)} columns, found {len(row)}",
                                        line=reader.line_num)
            yield _parse_row(row, columns, wanted, header, reader.line_num, zone)

    held, rest = _hold_until_granularity(rows(), granularity, filename)
    step = _granularity(granularity, filename, held)
    checker = _FiveMinuteHours(basis) if step == "5_minute" else _Periods(step, basis)  # type: ignore[arg-type]
    count = 0
    for row in _chain(held, rest):
        count += 1
        yield from checker.add(row)
    if count == 0:
        raise CarbonImportError(FORMAT, "no data rows after the header")
    yield from checker.finish()


def _hold_until_granularity(
    rows: Iterator[Row], explicit: Granularity | None, filename: str | None
) -> tuple[list[Row], Iterator[Row]]:
    """The rows to read before the granularity is known (none when named), and the iterator of the rest."""
    if explicit is not None or (filename and _FILENAME.search(filename)):
        return [], rows
    held: list[Row] = []
    seen: set[str] = set()
    for row in rows:
        held.append(row)
        if row[2] in seen:
            return held, rows
        seen.add(row[2])
        if len(held) >= MAX_HELD_ROWS:
            break
    if len(held) >= MAX_HELD_ROWS:
        raise CarbonImportError(FORMAT, f"no zone has two rows in the first {MAX_HELD_ROWS} rows: cannot infer "
                                "the granularity; name the file like FR_2024_hourly.csv")
    return held, rows


def _chain(held: list[Row], rest: Iterator[Row]) -> Iterator[Row]:
    yield from held
    held.clear()
    yield from rest


def _out_of_order(zone: str, before: tuple[datetime, int], now: tuple[datetime, int]) -> CarbonImportError:
    return CarbonImportError(
        FORMAT,
        f"rows of {zone} are not in time order: line {now[1]} ({format_hour(now[0])}) comes after line "
        f"{before[1]} ({format_hour(before[0])}); sort the file by time",
        line=now[1],
    )


class _Periods:
    """Hourly, daily, monthly or yearly rows: each zone continues where its last row ended."""

    def __init__(self, period: Granularity, basis: Basis) -> None:
        self.period, self.basis = period, basis
        self.last: dict[str, tuple[IntensityRecord, int]] = {}

    def add(self, row: Row) -> Iterator[IntensityRecord]:
        line, start, zone, value, re_pct, cfe, est = row
        problem = check_period_start(start, self.period)
        if problem:
            raise CarbonImportError(FORMAT, f"{problem} (granularity {self.period})", line=line,
                                    field="Datetime (UTC)")
        record = IntensityRecord(zone=zone, start_utc=start, granularity=self.period, intensity_g_per_kwh=value,
                                 basis=self.basis, source=SOURCE, renewable_pct=re_pct, cfe_pct=cfe, is_estimated=est)
        earlier = self.last.get(zone)
        if earlier is not None:
            before, before_line = earlier
            if start == before.start_utc:
                if record != before:
                    raise CarbonImportError(
                        FORMAT,
                        f"duplicate {self.period} for {zone} at {format_hour(start)} with different values (line "
                        f"{before_line}: {before.intensity_g_per_kwh:g} g/kWh, line {line}: {value:g} g/kWh)",
                        line=line,
                    )
                return
            if start < before.start_utc:
                raise _out_of_order(zone, (before.start_utc, before_line), (start, line))
            expected = next_period(before.start_utc, self.period)
            if start != expected:
                raise CarbonImportError(
                    FORMAT,
                    f"gap in a series that must be continuous: {zone}: nothing from {format_hour(expected)} to "
                    f"before {format_hour(start)} (between line {before_line} and line {line})",
                    line=line,
                )
        self.last[zone] = (record, line)
        yield record

    def finish(self) -> Iterator[IntensityRecord]:
        return iter(())


@dataclass
class _Hour:
    start: datetime
    points: list[Point] = field(default_factory=list)


class _FiveMinuteHours:
    """5-minute rows averaged into UTC hours: each zone's current hour is held until the next one starts."""

    def __init__(self, basis: Basis) -> None:
        self.make = _hour_record(basis)
        self.hours: dict[str, _Hour] = {}

    def add(self, row: Row) -> Iterator[IntensityRecord]:
        line, start, zone, value, re_pct, cfe, est = row
        origin = f"line {line}"
        point = Point(zone, start, value, origin, line, re_pct, cfe, False, est)
        if (start.minute * 60 + start.second) % 300 or start.microsecond:
            raise CarbonImportError(FORMAT, f"{origin}: {start.isoformat()} is not aligned to the 300 s period",
                                    line=line)
        current = self.hours.get(zone)
        if current is not None:
            last = current.points[-1]
            if start == last.start_utc:
                if point != last:
                    raise CarbonImportError(
                        FORMAT,
                        f"duplicate point for {zone} at {start.isoformat()} with different values "
                        f"({last.origin}: {last.intensity_g_per_kwh:g}, {origin}: {value:g})",
                        line=line,
                    )
                return
            if start < last.start_utc:
                raise _out_of_order(zone, (last.start_utc, last.line or 0), (start, line))
            if start - last.start_utc != FIVE_MINUTES:
                missing = int((start - last.start_utc) / FIVE_MINUTES) - 1
                raise CarbonImportError(
                    FORMAT,
                    f"gap in a series that must be continuous: {zone} has nothing between "
                    f"{last.start_utc.isoformat()} ({last.origin}) and {start.isoformat()} ({origin}); "
                    f"{missing} point(s) of 300 s missing",
                    line=line,
                )
            if floor_to_hour(start) != current.start:
                yield self._record(zone, current)
                current = None
        if current is None:
            current = self.hours[zone] = _Hour(floor_to_hour(start))
        current.points.append(point)

    def _record(self, zone: str, hour: _Hour) -> IntensityRecord:
        mean = sum(p.intensity_g_per_kwh for p in hour.points) / len(hour.points)
        return self.make(zone, hour.start, mean, hour.points)

    def finish(self) -> Iterator[IntensityRecord]:
        for zone, hour in self.hours.items():
            yield self._record(zone, hour)


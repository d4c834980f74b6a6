"""Checks shared by all intensity importers: duplicates, gaps, and sub-hourly → hourly averaging.

Rules (the same for every format):

* **Duplicates** — the same zone and period twice: identical rows are kept once; rows that disagree
  are an error naming both places, because picking one would be a guess.
* **Gaps** — a series whose format promises continuity (hourly history, daily/monthly exports,
  half-hourly or 5-minute feeds) must not skip a period. A gap is an error listing where it is; the
  importer never interpolates.
* **Sub-hourly data** (UK half-hours, WattTime 5-minute points, Electricity Maps 5-minute exports) is
  averaged into UTC hours. Only the first and last hour of a gap-free series can be partial; they are
  averaged over the points present.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from planner.grid_carbon.hours import floor_to_hour, format_hour
from planner.grid_carbon.importers.errors import CarbonImportError
from planner.grid_carbon.records import Granularity, IntensityRecord


@dataclass(frozen=True, slots=True)
class Draft:
    """A parsed record and where it came from (``line`` for CSV, ``origin`` text for messages)."""

    record: IntensityRecord
    origin: str
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Point:
    """One sub-hourly observation before averaging into hours."""

    zone: str
    start_utc: datetime
    intensity_g_per_kwh: float
    origin: str
    line: int | None = None
    renewable_pct: float | None = None
    cfe_pct: float | None = None
    is_forecast: bool = False
    is_estimated: bool = False


def next_period(start: datetime, granularity: Granularity) -> datetime:
    """Start of the period after the one starting at ``start``."""
    if granularity == "hour":
        return start + timedelta(hours=1)
    if granularity == "day":
        return start + timedelta(days=1)
    if granularity == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.replace(year=start.year + 1)


def check_period_start(start: datetime, granularity: Granularity) -> str | None:
    """Why ``start`` cannot begin a ``granularity`` period, or ``None`` if it can."""
    if start.minute or start.second or start.microsecond:
        return f"{start.isoformat()} is not on an hour boundary"
    if granularity in ("day", "month", "year") and start.hour:
        return f"{start.isoformat()} does not start a UTC day"
    if granularity in ("month", "year") and start.day != 1:
        return f"{start.isoformat()} does not start a month"
    if granularity == "year" and start.month != 1:
        return f"{start.isoformat()} does not start a year"
    return None


def finalize(drafts: Sequence[Draft], *, format_name: str, continuous: bool = True) -> list[IntensityRecord]:
    """Dedupe, reject conflicts and (if ``continuous``) gaps; return records sorted by zone and time."""
    kept: dict[tuple[str, Granularity, datetime], Draft] = {}
    for draft in drafts:
        record = draft.record
        key = (record.zone, record.granularity, record.start_utc)
        earlier = kept.get(key)
        if earlier is None:
            kept[key] = draft
        elif earlier.record != record:
            raise CarbonImportError(
                format_name,
                f"duplicate {record.granularity} for {record.zone} at {format_hour(record.start_utc)} with "
                f"different values ({earlier.origin}: {earlier.record.intensity_g_per_kwh:g} g/kWh, "
                f"{draft.origin}: {record.intensity_g_per_kwh:g} g/kWh)",
                line=draft.line,
            )
    ordered = sorted(kept.values(), key=lambda d: (d.record.zone, d.record.start_utc))
    granularity_by_zone: dict[str, Granularity] = {}
    for draft in ordered:
        seen = granularity_by_zone.setdefault(draft.record.zone, draft.record.granularity)
        if seen != draft.record.granularity:
            raise CarbonImportError(
                format_name,
                f"zone {draft.record.zone} mixes {seen} and {draft.record.granularity} rows",
                line=draft.line,
            )
    if continuous:
        _check_gaps(ordered, format_name)
    return [draft.record for draft in ordered]


def _check_gaps(ordered: Sequence[Draft], format_name: str) -> None:
    gaps: list[str] = []
    first_line: int | None = None
    for before, after in itertools.pairwise(ordered):
        if before.record.zone != after.record.zone:
            continue
        expected = next_period(before.record.start_utc, before.record.granularity)
        if after.record.start_utc != expected:
            missing = _count_missing(expected, after.record.start_utc, before.record.granularity)
            gaps.append(
                f"{before.record.zone}: nothing from {format_hour(expected)} to before "
                f"{format_hour(after.record.start_utc)} ({missing} {before.record.granularity}(s) missing, "
                f"between {before.origin} and {after.origin})"
            )
            first_line = first_line if first_line is not None else after.line
    if gaps:
        shown = "; ".join(gaps[:3]) + (f"; and {len(gaps) - 3} more" if len(gaps) > 3 else "")
        raise CarbonImportError(
            format_name, f"gap in a series that must be continuous: {shown}", line=first_line
        )


def _count_missing(expected: datetime, actual: datetime, granularity: Granularity) -> int:
    count = 0
    current = expected
    while current < actual and count < 1_000_000:
        count += 1
        current = next_period(current, granularity)
    return count


def average_into_hours(
    points: Sequence[Point],
    *,
    period_s: int,
    format_name: str,
    make_record: Callable[[str, datetime, float, Sequence[Point]], IntensityRecord],
) -> list[Draft]:
    """Check sub-hourly ``points`` for duplicates and gaps at ``period_s`` spacing, then average by hour.

    ``make_record(zone, hour_utc, mean_intensity, points_in_hour)`` builds each hourly record.
    """
    if period_s <= 0 or 3600 % period_s:
        raise CarbonImportError(format_name, f"period of {period_s} s does not divide an hour")
    unique: dict[tuple[str, datetime], Point] = {}
    for point in points:
        key = (point.zone, point.start_utc)
        earlier = unique.get(key)
        if earlier is None:
            unique[key] = point
        elif earlier != point:
            raise CarbonImportError(
                format_name,
                f"duplicate point for {point.zone} at {point.start_utc.isoformat()} with different values "
                f"({earlier.origin}: {earlier.intensity_g_per_kwh:g}, {point.origin}: {point.intensity_g_per_kwh:g})",
                line=point.line,
            )
    ordered = sorted(unique.values(), key=lambda p: (p.zone, p.start_utc))
    step = timedelta(seconds=period_s)
    for point in ordered:
        if (point.start_utc.minute * 60 + point.start_utc.second) % period_s or point.start_utc.microsecond:
            raise CarbonImportError(
                format_name,
                f"{point.origin}: {point.start_utc.isoformat()} is not aligned to the {period_s} s period",
                line=point.line,
            )
    for before, after in itertools.pairwise(ordered):
        if before.zone == after.zone and after.start_utc - before.start_utc != step:
            missing = int((after.start_utc - before.start_utc) / step) - 1
            raise CarbonImportError(
                format_name,
                f"gap in a series that must be continuous: {before.zone} has nothing between "
                f"{before.start_utc.isoformat()} ({before.origin}) and {after.start_utc.isoformat()} "
                f"({after.origin}); {missing} point(s) of {period_s} s missing",
                line=after.line,
            )
    groups: dict[tuple[str, datetime], list[Point]] = defaultdict(list)
    for point in ordered:
        groups[(point.zone, floor_to_hour(point.start_utc))].append(point)
    drafts = []
    for (zone, hour), members in groups.items():
        mean = sum(p.intensity_g_per_kwh for p in members) / len(members)
        origin = members[0].origin if len(members) == 1 else f"{members[0].origin}..{members[-1].origin}"
        drafts.append(Draft(make_record(zone, hour, mean, members), origin, members[0].line))
    return drafts


def mean_or_none(values: Sequence[float | None]) -> float | None:
    """Mean of the values if none is missing, else ``None`` (a partial mean would mislead)."""
    if not values or any(v is None for v in values):
        return None
    present = [v for v in values if v is not None]
    return sum(present) / len(present)

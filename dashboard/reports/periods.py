"""The period a report covers: a month (``2026-11``), a quarter (``2026-Q4``), a year (``2026``), or custom
dates (``from`` and ``to``, both inclusive). Whole UTC days; a run belongs to the period it started in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

KINDS = ("month", "quarter", "year", "custom")
MAX_DAYS = 3660  # ten years: enough for any report, and keeps dates inside what the database stores


class BadPeriod(ValueError):
    """A period that does not parse, or ends before it starts: says what was expected."""


@dataclass(frozen=True)
class Period:
    kind: str
    label: str  # 2026-Q4, 2026-11, 2026, or 2026-10-01 to 2026-12-31
    first: date
    last: date  # inclusive

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Midnight after the last day (exclusive)."""
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=UTC)

    @property
    def years(self) -> range:
        return range(self.first.year, self.last.year + 1)

    @property
    def slug(self) -> str:
        return self.label.replace(" to ", "_")


def _month_end(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


def month(year: int, number: int) -> Period:
    return Period("month", f"{year:04d}-{number:02d}", date(year, number, 1), _month_end(year, number))


def quarter(year: int, number: int) -> Period:
    return Period("quarter", f"{year:04d}-Q{number}", date(year, 3 * number - 2, 1), _month_end(year, 3 * number))


def year(number: int) -> Period:
    return Period("year", f"{number:04d}", date(number, 1, 1), date(number, 12, 31))


def custom(first: date, last: date) -> Period:
    if last < first:
        raise BadPeriod(f"the period ends ({last}) before it starts ({first})")
    if (last - first).days > MAX_DAYS:
        raise BadPeriod(f"a period is at most {MAX_DAYS} days")
    return Period("custom", f"{first} to {last}", first, last)


def _date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadPeriod(f"{what}: expected a date like 2026-10-01, got {text[:40]!r}") from None


FIRST_YEAR, LAST_YEAR = 1970, 9000  # before any measurement, and far from date's limits


def parse_period(spec: str, first: str = "", last: str = "") -> Period:
    """``2026-11``, ``2026-Q4``, ``2026``, or ``custom`` with ``first`` and ``last`` dates."""
    period = _parse(spec, first, last)
    if period.first.year < FIRST_YEAR or period.last.year > LAST_YEAR:
        raise BadPeriod(f"a period lies between {FIRST_YEAR} and {LAST_YEAR}")
    return period


def _parse(spec: str, first: str, last: str) -> Period:
    spec = spec.strip()
    try:
        if match := re.fullmatch(r"(\d{4})-(\d{2})", spec):
            return month(int(match[1]), int(match[2]))
        if match := re.fullmatch(r"(\d{4})-[Qq]([1-4])", spec):
            return quarter(int(match[1]), int(match[2]))
        if re.fullmatch(r"\d{4}", spec):
            return year(int(spec))
    except ValueError:
        pass  # a month 13 or a year 0 falls through to the error below
    if spec == "custom" or (not spec and (first or last)):
        return custom(_date(first, "from"), _date(last, "to"))
    raise BadPeriod(f"period: expected a month (2026-11), a quarter (2026-Q4), a year (2026) or 'custom' with "
                    f"from and to dates, got {spec[:40]!r}")


def period_from_query(query: Mapping[str, str], today: date) -> Period:
    """From a page's or the API's parameters; the current quarter when none is given."""
    spec, first, last = query.get("period", ""), query.get("from", ""), query.get("to", "")
    if not (spec or first or last):
        return quarter(today.year, (today.month - 1) // 3 + 1)
    return parse_period(spec, first, last)


def choices(today: date) -> list[Period]:
    """What the page offers as one click: this and last month, quarter and year."""
    q = (today.month - 1) // 3 + 1
    last_month = today.replace(day=1) - timedelta(days=1)
    last_quarter = (today.year, q - 1) if q > 1 else (today.year - 1, 4)
    return [month(today.year, today.month), month(last_month.year, last_month.month), quarter(today.year, q),
            quarter(*last_quarter), year(today.year), year(today.year - 1)]

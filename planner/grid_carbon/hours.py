"""UTC hour arithmetic.

Emissions are bucketed per UTC hour (the Zeus pattern): grid data providers key hourly intensity by the
*start* of the hour in UTC, so a value for ``10:00Z`` is valid from 10:00 until 11:00. Everything in this
package that is keyed by an hour uses a timezone-aware ``datetime`` at the start of a UTC hour.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

ONE_HOUR = timedelta(hours=1)


class HourError(ValueError):
    """A datetime that should name a UTC hour does not."""


def require_utc_hour(value: datetime, *, what: str = "hour") -> datetime:
    """Return ``value`` as a UTC datetime, insisting it is aware and on an hour boundary.

    Naive datetimes are refused rather than guessed: a local time mistaken for UTC shifts every
    hour of a run onto the wrong grid intensity.
    """
    if not isinstance(value, datetime):
        raise HourError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise HourError(f"{what} {value.isoformat()} has no timezone; pass an aware UTC datetime")
    utc = value.astimezone(UTC)
    if utc.minute or utc.second or utc.microsecond:
        raise HourError(f"{what} {utc.isoformat()} is not the start of a UTC hour")
    return utc


def floor_to_hour(value: datetime) -> datetime:
    """Return the start of the UTC hour containing the aware datetime ``value``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise HourError(f"{value.isoformat()} has no timezone; pass an aware datetime")
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def format_hour(value: datetime) -> str:
    """Format an hour the way reasons and errors show it: ``2026-05-01T03:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")

"""Parsing the timestamps found in grid-data files into aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def parse_timestamp(text: str, *, naive_tz: tzinfo | None = UTC) -> datetime:
    """Parse ``2024-03-05 10:00:00``, ``2024-03-05T10:00:00.000Z``, ``2022-01-01T00:30Z`` or
    ``2024-02-27T16:40:00+00:00`` into an aware UTC datetime.

    A timestamp without an offset is read in ``naive_tz`` (UTC by default: Electricity Maps CSVs say
    "Datetime (UTC)" in the header); pass ``naive_tz=None`` to refuse naive timestamps.
    Raises ``ValueError`` with the offending text.
    """
    cleaned = text.strip()
    if not cleaned:
        raise ValueError("empty timestamp")
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"unparsable timestamp {text!r}") from None
    if value.tzinfo is None:
        if naive_tz is None:
            raise ValueError(f"timestamp {text!r} has no UTC offset")
        value = value.replace(tzinfo=naive_tz)
    return value.astimezone(UTC)

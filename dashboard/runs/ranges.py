"""Time ranges from query parameters: the run and GPU pages' picker, kept in the URL so links are shareable.

``?range=15m|1h|6h|24h|all`` picks a relative range, Grafana-style; ``?from=…&to=…`` (ISO 8601, taken as
UTC when it has no offset, or epoch milliseconds) picks a custom one. A relative range ends *now* while the
run is streaming, and at the run's last sample once it has finished: "the last hour" of a run that ended
yesterday means its last hour, not an empty chart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

RELATIVE_MS: dict[str, int] = {
    "15m": 15 * 60_000,
    "1h": 3_600_000,
    "6h": 6 * 3_600_000,
    "24h": 24 * 3_600_000,
}
LABELS: dict[str, str] = {"15m": "Last 15 min", "1h": "Last hour", "6h": "Last 6 h", "24h": "Last 24 h",
                          "all": "Whole run"}
ALL = "all"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CUSTOM = "custom"


class BadRange(ValueError):
    """A range the user asked for that cannot be shown; the message says why, for a 400 page."""


@dataclass(frozen=True)
class TimeRange:
    """What the user picked: ``key`` is one of RELATIVE_MS, ``all`` or ``custom`` (then from/to are set)."""

    key: str = ALL
    from_ms: int | None = None
    to_ms: int | None = None

    def bounds_ms(self, first_ms: int, last_ms: int, *, live: bool, now_ms: int) -> tuple[int, int]:
        """Absolute [start, end] in epoch ms for data spanning [first_ms, last_ms].

        The bounds are clipped to the data, so an "all" or an over-wide custom range never draws empty
        space; a range that misses the data entirely gives start > end, which callers show as empty.
        """
        if self.key == ALL:
            return first_ms, last_ms
        if self.key == CUSTOM:
            assert self.from_ms is not None and self.to_ms is not None
            return max(self.from_ms, first_ms), min(self.to_ms, last_ms)
        end = max(now_ms, last_ms) if live else last_ms
        return max(end - RELATIVE_MS[self.key], first_ms), last_ms

    def query(self) -> dict[str, str]:
        """The query parameters that select this range again (empty for the default)."""
        if self.key == CUSTOM:
            return {"from": _iso(self.from_ms), "to": _iso(self.to_ms)}
        return {} if self.key == ALL else {"range": self.key}

    @property
    def label(self) -> str:
        if self.key == CUSTOM:
            return f"{_iso(self.from_ms)} → {_iso(self.to_ms)} UTC"
        return LABELS[self.key]


def _iso(ms: int | None) -> str:
    return datetime.fromtimestamp((ms or 0) / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


# A "+" in a query string decodes to a space, so "…T10:00:00+02:00" arrives as "…T10:00:00 02:00".
_SPACED_OFFSET = re.compile(r" (\d\d(:?\d\d)?)$")
MAX_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z


def parse_instant_ms(text: str, name: str) -> int:
    """Epoch milliseconds from ``1767225600000`` or ISO 8601 (``2026-01-01T00:00:00Z``; no offset = UTC)."""
    text = text.strip()
    if not text:
        raise BadRange(f"{name} is empty: give epoch milliseconds (1767225600000) or ISO 8601 (2026-01-01T00:00Z)")
    if text.isascii() and text.isdigit() and len(text) <= 15:
        value = int(text)
    else:
        try:
            moment = datetime.fromisoformat(_SPACED_OFFSET.sub(r"+\1", text))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            value = (moment - EPOCH) // timedelta(milliseconds=1)
        except (ValueError, OverflowError):
            raise BadRange(
                f"{name}={text[:40]!r} is not a time: give epoch milliseconds (1767225600000) or an ISO 8601 "
                "UTC datetime (2026-01-01T00:00:00Z)"
            ) from None
    if not 0 <= value < MAX_MS:
        raise BadRange(f"{name}={text[:40]!r} is outside the years 1970 to 9999")
    return value


def parse_range(params: Mapping[str, str]) -> TimeRange:
    """The range in ``params``; raises BadRange with a message fit to show the user."""
    has_from, has_to = bool(params.get("from")), bool(params.get("to"))
    if has_from or has_to:
        if not (has_from and has_to):
            raise BadRange("a custom range needs both 'from' and 'to'")
        from_ms = parse_instant_ms(params["from"], "from")
        to_ms = parse_instant_ms(params["to"], "to")
        if from_ms >= to_ms:
            raise BadRange(f"'from' ({_iso(from_ms)}) must be before 'to' ({_iso(to_ms)})")
        return TimeRange(CUSTOM, from_ms, to_ms)
    key = params.get("range") or ALL
    if key != ALL and key not in RELATIVE_MS:
        choices = ", ".join([*RELATIVE_MS, ALL])
        raise BadRange(f"unknown range {key!r}: choose one of {choices}, or give 'from' and 'to'")
    return TimeRange(key)

"""Time ranges from query parameters: the one parser of ``from``/``to``, and the pages' range picker.

``parse_time_range`` turns ``from`` and ``to`` (ISO 8601, taken as UTC when it has no offset, or epoch
milliseconds) into a :class:`~dashboard.telemetry.windows.TimeRange`, inclusive at both ends; the CSV
export, whose documented ``to`` is exclusive, says so and gets ``to - 1``.

The run and GPU pages keep the user's pick in the URL so links are shareable: ``?range=15m|1h|6h|24h|all``
picks a relative range, Grafana-style, and ``?from=…&to=…`` a custom one (a :class:`RangeChoice`). A
relative range ends *now* while the run is streaming, and at the run's last sample once it has finished:
"the last hour" of a run that ended yesterday means its last hour, not an empty chart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dashboard.telemetry.windows import ALL_TIME, EARLIEST_MS, LATEST_MS, TimeRange
from planner.units import MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_S

RELATIVE_MS: dict[str, int] = {
    "15m": 15 * MS_PER_MINUTE,
    "1h": MS_PER_HOUR,
    "6h": 6 * MS_PER_HOUR,
    "24h": MS_PER_DAY,
}
LABELS: dict[str, str] = {"15m": "Last 15 min", "1h": "Last hour", "6h": "Last 6 h", "24h": "Last 24 h",
                          "all": "Whole run"}
ALL = "all"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CUSTOM = "custom"


class BadRange(ValueError):
    """A range the user asked for that cannot be used; the message says why, for a 400 answer."""


@dataclass(frozen=True)
class RangeChoice:
    """What the user picked on a page: ``key`` is one of RELATIVE_MS, ``all``, or ``custom`` with its range.

    It becomes a :class:`TimeRange` only against the run's data (:meth:`resolve`).
    """

    key: str = ALL
    custom: TimeRange | None = None

    def resolve(self, data: TimeRange, *, live: bool, now_ms: int) -> TimeRange:
        """The stretch to draw for data spanning ``data``.

        It is clipped to the data, so an "all" or an over-wide custom range never draws empty space; a
        range that misses the data entirely is empty, which callers show as such.
        """
        if self.key == ALL:
            return data
        if self.key == CUSTOM:
            assert self.custom is not None
            return self.custom.within(data)
        end = max(now_ms, data.to_ms) if live else data.to_ms
        return TimeRange(end - RELATIVE_MS[self.key], data.to_ms).within(data)

    def query(self) -> dict[str, str]:
        """The query parameters that select this choice again (empty for the default)."""
        if self.custom is not None:
            return {"from": _iso(self.custom.from_ms), "to": _iso(self.custom.to_ms)}
        return {} if self.key == ALL else {"range": self.key}

    @property
    def label(self) -> str:
        if self.custom is not None:
            return f"{_iso(self.custom.from_ms)} → {_iso(self.custom.to_ms)} UTC"
        return LABELS[self.key]


def _iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / MS_PER_S, tz=UTC)
    # Whole seconds read as they were typed into the picker; milliseconds only when there are some.
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ms % MS_PER_S:03d}" if ms % MS_PER_S else "")


# A "+" in a query string decodes to a space, so "…T10:00:00+02:00" arrives as "…T10:00:00 02:00".
_SPACED_OFFSET = re.compile(r" (\d\d(:?\d\d)?)$")


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
    if not EARLIEST_MS <= value <= LATEST_MS:
        raise BadRange(f"{name}={text[:40]!r} is outside the years 1970 to 9999")
    return value


def _given(params: Mapping[str, str], name: str) -> bool:
    return bool(params.get(name, "").strip())


def parse_time_range(params: Mapping[str, str], *, to_exclusive: bool = False) -> TimeRange:
    """The range ``from`` and ``to`` select; a missing one leaves that end open (:data:`ALL_TIME`'s).

    ``from`` must come before ``to``. With ``to_exclusive`` (the CSV export's ``from <= t < to``) the
    range ends a millisecond before ``to``. Raises BadRange with a message fit to show the user.
    """
    from_ms = parse_instant_ms(params["from"], "from") if _given(params, "from") else ALL_TIME.from_ms
    to_ms = parse_instant_ms(params["to"], "to") if _given(params, "to") else None
    if to_ms is not None and from_ms >= to_ms:
        raise BadRange(f"'from' ({_iso(from_ms)}) must be before 'to' ({_iso(to_ms)})")
    if to_ms is None:
        return TimeRange(from_ms, ALL_TIME.to_ms)
    return TimeRange(from_ms, to_ms - 1 if to_exclusive else to_ms)


def parse_choice(params: Mapping[str, str]) -> RangeChoice:
    """The pick in a page's ``params``; raises BadRange with a message fit to show the user."""
    if _given(params, "from") or _given(params, "to"):
        if not (_given(params, "from") and _given(params, "to")):
            raise BadRange("a custom range needs both 'from' and 'to'")
        return RangeChoice(CUSTOM, parse_time_range(params))
    key = params.get("range") or ALL
    if key != ALL and key not in RELATIVE_MS:
        choices = ", ".join([*RELATIVE_MS, ALL])
        raise BadRange(f"unknown range {key!r}: choose one of {choices}, or give 'from' and 'to'")
    return RangeChoice(key)

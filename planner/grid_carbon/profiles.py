"""Typical hour-of-day intensity profiles built from imported hourly history.

When no forecast is available, the best offline guess for "how clean will the grid be at 03:00 UTC
tomorrow" is how clean it usually is at 03:00 UTC: the mean of all imported hourly values at that
hour of day. Grids with a lot of solar are cleaner at midday, wind-heavy or nuclear grids are often
cleaner at night; a flat grid (France) shows a flat profile, and then shifting in time gains nothing.

Hours are UTC hours of day. Local diurnal patterns move by an hour at daylight-saving changes; with a
year of history that blurs the profile slightly but does not bias it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from planner.grid_carbon.records import Basis, IntensityRecord, Signal


@dataclass(frozen=True, slots=True)
class HourOfDayProfile:
    """Mean intensity per UTC hour of day for one zone, and how many samples back each mean."""

    zone: str
    intensity_by_hour: dict[int, float]
    samples_by_hour: dict[int, int]
    basis: Basis
    signal: Signal
    source: str
    first_utc: datetime
    last_utc: datetime


def typical_profile(
    records: Iterable[IntensityRecord],
    zone: str,
    *,
    months: Iterable[int] | None = None,
) -> HourOfDayProfile | None:
    """Hour-of-day profile of ``zone`` from hourly, non-forecast records (``None`` if there are none).

    ``months`` (1–12) restricts the history to a season (e.g. the months of the planned run). Records of
    the zone's most common basis and signal are used, so lifecycle and direct values are never averaged
    together.
    """
    wanted_months = set(months) if months is not None else None
    usable = [
        r
        for r in records
        if r.zone == zone
        and r.granularity == "hour"
        and not r.is_forecast
        and (wanted_months is None or r.start_utc.month in wanted_months)
    ]
    if not usable:
        return None
    (basis, signal, source), _ = Counter((r.basis, r.signal, r.source) for r in usable).most_common(1)[0]
    chosen = [r for r in usable if (r.basis, r.signal, r.source) == (basis, signal, source)]
    sums: dict[int, float] = defaultdict(float)
    counts: dict[int, int] = defaultdict(int)
    for record in chosen:
        sums[record.start_utc.hour] += record.intensity_g_per_kwh
        counts[record.start_utc.hour] += 1
    return HourOfDayProfile(
        zone=zone,
        intensity_by_hour={hour: sums[hour] / counts[hour] for hour in sorted(sums)},
        samples_by_hour=dict(sorted(counts.items())),
        basis=basis,
        signal=signal,
        source=source,
        first_utc=min(r.start_utc for r in chosen),
        last_utc=max(r.start_utc for r in chosen),
    )

"""Raw retention: raw windows are kept ``WATTWISE_RAW_RETENTION_DAYS`` (by their time), receipts a week longer
(by when they arrived); after that a run keeps its totals (``RunGpu``), minute rollups (``GpuMinute``),
carbon figures and events, and its pages say which stretch of raw samples expired.

``maintain`` is what the beat task ``telemetry.maintain_partitions`` runs: on PostgreSQL it creates the weekly
partitions (``dashboard.telemetry.partitions``) from the oldest kept week to ``WEEKS_AHEAD`` weeks ahead and
drops the ones wholly past the retention, so expiring data is a few ``DROP TABLE``s, never a long DELETE.
On SQLite (the embedded default) there are no partitions: it deletes the expired rows. Either way it records
the horizon (``RawHorizon``) that pages read. Running it again changes nothing.

Why receipts are kept a week longer: a batch is recognised as already stored by its receipt. Receipts
dropped are older than ``retention + 1 week`` by arrival, so a redelivered copy of any batch whose first
copy arrived within that time is still recognised. (A copy arriving later than that, which no broker or
agent retries for, would be stored again.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction
from django.utils import timezone
from psycopg.errors import LockNotAvailable

from dashboard.telemetry import partitions
from dashboard.telemetry.models import BatchReceipt, RawHorizon, RunGpu, SampleWindow
from dashboard.telemetry.partitions import RECEIPTS, WEEK, WINDOWS

log = logging.getLogger(__name__)

WEEKS_AHEAD = 2  # partitions made ahead: the task can fail for two weeks before rows go to the default
CLOSED_FOR = timedelta(days=1)  # a week's indexes are rebuilt once it ended this long ago (late rows settle)


@dataclass(frozen=True)
class Horizons:
    """Raw windows starting before ``windows``, and receipts received before ``receipts``, are dropped."""

    windows: date
    receipts: date

    @classmethod
    def at(cls, now: datetime, retention_days: int) -> Horizons:
        oldest = (now - timedelta(days=retention_days)).astimezone(UTC).date()
        return cls(windows=partitions.monday(oldest), receipts=partitions.monday(oldest) - WEEK)


@dataclass
class Maintained:
    """What a maintenance pass did."""

    partitioned: bool
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    deleted_rows: int = 0  # SQLite only: rows deleted instead of dropped
    in_default: dict[str, int] = field(default_factory=dict)  # rows waiting in each default partition
    postponed: list[str] = field(default_factory=list)  # steps that met a lock held too long: the next pass
    compacted: list[str] = field(default_factory=list)  # closed weeks whose indexes were rebuilt

    def as_json(self) -> dict[str, Any]:
        return {"partitioned": self.partitioned, "created": self.created, "dropped": self.dropped,
                "deleted_rows": self.deleted_rows, "in_default": self.in_default, "postponed": self.postponed,
                "compacted": self.compacted}


def maintain(now: datetime | None = None, retention_days: int | None = None) -> Maintained:
    """Make this and the next weeks' partitions, drop expired ones, and record the horizon. Idempotent."""
    now = now or timezone.now()
    days = retention_days or settings.WATTWISE_RAW_RETENTION_DAYS
    horizons = Horizons.at(now, days)
    done = Maintained(partitioned=partitions.is_partitioned(WINDOWS))
    if done.partitioned:
        last = partitions.monday(now.astimezone(UTC).date()) + WEEKS_AHEAD * WEEK
        for spec, first in ((WINDOWS, horizons.windows), (RECEIPTS, horizons.receipts)):
            week = first
            while week <= last:
                with _postponed_if_locked(done, f"create {spec.name(week)}"):
                    if partitions.ensure_week(spec, week):
                        done.created.append(spec.name(week))
                week += WEEK
            with _postponed_if_locked(done, f"drop {spec.table} before {first}"), transaction.atomic():
                done.dropped += partitions.drop_before(spec, first)
            done.in_default[spec.table] = partitions.default_rows(spec)
            _compact_one_week(spec, now, done)
    else:
        with transaction.atomic():
            cutoff_ms = WINDOWS.bound(horizons.windows)
            done.deleted_rows += SampleWindow.objects.filter(first_ms__lt=cutoff_ms).delete()[0]
            done.deleted_rows += BatchReceipt.objects.filter(received_at__lt=RECEIPTS.bound(horizons.receipts)).delete()[0]
    _record(horizons, days, now)
    return done


def _compact_one_week(spec: partitions.Partitioned, now: datetime, done: Maintained) -> None:
    """Rebuild the indexes of the oldest closed week not rebuilt yet: one a pass, as a week of a large fleet
    takes minutes. Not inside a transaction (``REINDEX CONCURRENTLY`` cannot run in one): a caller's
    transaction leaves it to the next pass. A failure is logged and left to the next pass too."""
    if connection.in_atomic_block:
        return
    closed = [name for week, name in sorted(partitions.weeks(spec).items())
              if datetime(week.year, week.month, week.day, tzinfo=UTC) + WEEK + CLOSED_FOR <= now]
    for name in closed:
        if partitions.compacted(name):
            continue
        try:
            partitions.compact(name)
        except DatabaseError as exc:
            log.warning("raw retention: rebuilding the indexes of %s postponed to the next pass (%s)", name, exc)
            done.postponed.append(f"compact {name}")
        else:
            done.compacted.append(name)
        return


@contextlib.contextmanager
def _postponed_if_locked(done: Maintained, step: str) -> Iterator[None]:
    """A step that waited past ``partitions.DDL_LOCK_TIMEOUT`` for a lock is left to the next pass, and said."""
    try:
        yield
    except OperationalError as exc:
        if not isinstance(exc.__cause__, LockNotAvailable):
            raise
        log.warning("raw retention: %s postponed to the next pass: a lock was held longer than %s (%s)",
                    step, partitions.DDL_LOCK_TIMEOUT, exc)
        done.postponed.append(step)


def _record(horizons: Horizons, days: int, now: datetime) -> None:
    """Keep the horizon pages read; it never moves back (a longer retention cannot bring data back)."""
    windows_ms, receipts = WINDOWS.bound(horizons.windows), RECEIPTS.bound(horizons.receipts)
    assert isinstance(windows_ms, int) and isinstance(receipts, datetime)
    with transaction.atomic():
        row = RawHorizon.objects.select_for_update().order_by("pk").first()
        if row is None:
            RawHorizon.objects.create(windows_before_ms=windows_ms, receipts_before=receipts, retention_days=days,
                                      applied_at=now)
            return
        row.windows_before_ms = max(row.windows_before_ms, windows_ms)
        row.receipts_before = max(row.receipts_before, receipts)
        row.retention_days, row.applied_at = days, now
        row.save()


# --- what pages read -------------------------------------------------------------------------------------


def horizon() -> RawHorizon | None:
    return RawHorizon.objects.order_by("pk").first()


@dataclass(frozen=True)
class Expired:
    """The stretch of a run's (or a GPU's) time whose raw samples were dropped: ``from_ms`` to ``to_ms``."""

    from_ms: int
    to_ms: int
    retention_days: int
    whole: bool  # nothing raw is left

    @property
    def message(self) -> str:
        return (f"Raw samples from {_utc(self.from_ms)} to {_utc(self.to_ms)} have expired (raw data is kept "
                f"{self.retention_days} days); totals, per-minute figures, carbon and events are kept.")


def expired(run_gpus: list[RunGpu], found: RawHorizon | None = None) -> Expired | None:
    """Which part of these GPUs' time lost its raw samples; None when all of it still has them."""
    found = found or horizon()
    spans = [(rg.first_ms, rg.last_ms) for rg in run_gpus if rg.first_ms is not None and rg.last_ms is not None]
    if found is None or not spans:
        return None
    first, last = min(s[0] for s in spans), max(s[1] for s in spans)
    if first >= found.windows_before_ms:
        return None
    return Expired(first, min(last, found.windows_before_ms - 1), found.retention_days,
                   whole=last < found.windows_before_ms)


def raw_from_ms() -> int | None:
    """Raw windows start at or after this (None: nothing expired yet)."""
    found = horizon()
    return None if found is None else found.windows_before_ms


def receipts_expired(run_started: datetime | None) -> bool:
    """Whether a run that started then may have lost receipts (it cannot be checked for missing batches)."""
    found = horizon()
    return found is not None and run_started is not None and run_started < found.receipts_before


def _utc(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


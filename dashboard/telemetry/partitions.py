"""Weekly partitions of raw windows and batch receipts (PostgreSQL declarative partitioning).

``dashboard_samplewindow`` is partitioned by RANGE of ``first_ms`` (epoch ms) and ``dashboard_batchreceipt``
by RANGE of ``received_at``; one partition per ISO week, named ``<table>_pYYYYMMDD`` after its Monday
(00:00 UTC), and a default partition ``<table>_default`` that takes any row no week covers (made by
migration 0013). Plain functions over a cursor: ``dashboard.telemetry.retention`` decides which weeks to
keep and calls them from the beat task.

Why weeks: queries that cannot prune by time (ingest's continuity check, lookups of a receipt by its
key) probe every partition's index, so their cost grows with the number of partitions: 90 days of
retention is 13-15 weekly partitions against 90-92 daily ones. A week of a 1,000-GPU fleet at 10 Hz is
about 23 GB of windows before compression: small enough to drop in one statement, and expiry is late
by at most a week.

A row for a week that has no partition yet (far in the future, or before the oldest kept week) lands in
the default partition, so ingest never fails for want of a partition. ``ensure_week`` moves such rows
into the week's partition when it creates it; rows older than the retention are deleted from the default
partition (it only ever holds stragglers), everything else waits there until its week is created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connection, transaction

WEEK = timedelta(weeks=1)


@dataclass(frozen=True)
class Partitioned:
    """A table partitioned by week on ``key``."""

    table: str
    key: str
    epoch_ms: bool  # the key is epoch milliseconds (else a timestamptz)

    def bound(self, week: date) -> int | datetime:
        at = datetime(week.year, week.month, week.day, tzinfo=UTC)
        return int(at.timestamp() * 1000) if self.epoch_ms else at

    def name(self, week: date) -> str:
        return f"{self.table}_p{week:%Y%m%d}"

    @property
    def default(self) -> str:
        return f"{self.table}_default"


WINDOWS = Partitioned("dashboard_samplewindow", "first_ms", epoch_ms=True)
RECEIPTS = Partitioned("dashboard_batchreceipt", "received_at", epoch_ms=False)


def monday(day: date) -> date:
    """The Monday of ``day``'s ISO week."""
    return day - timedelta(days=day.weekday())


def is_partitioned(spec: Partitioned) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [spec.table])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def weeks(spec: Partitioned) -> dict[date, str]:
    """The table's weekly partitions (by Monday), read from ``pg_inherits``."""
    pattern = re.compile(rf"^{re.escape(spec.table)}_p(\d{{8}})$")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass", [spec.table]
        )
        names = [row[0] for row in cursor.fetchall()]
    found = {}
    for name in names:
        match = pattern.match(name)
        if match:
            found[datetime.strptime(match.group(1), "%Y%m%d").date()] = name
    return found


# Attaching or dropping a partition locks the whole table; behind a long reader it would hold every insert
# and page read queued behind it. Give up instead: the next hourly pass tries again.
DDL_LOCK_TIMEOUT = "2s"


def wait_briefly_for_locks(cursor: Any) -> None:
    """Make this transaction's lock waits fail after DDL_LOCK_TIMEOUT (``LockNotAvailable``) instead of queueing."""
    cursor.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")


def ensure_week(spec: Partitioned, week: date) -> bool:
    """Create ``week``'s partition if it is missing, moving into it any rows of that week waiting in the
    default partition; True when it was created. Idempotent."""
    name, low, high = spec.name(week), spec.bound(week), spec.bound(week + WEEK)
    with transaction.atomic(), connection.cursor() as cursor:
        wait_briefly_for_locks(cursor)
        # Holds ingest off the default partition for this transaction only: a row of this week landing there
        # between the move and the attach would make the attach fail.
        cursor.execute(f"LOCK TABLE {spec.default} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute("SELECT to_regclass(%s)", [name])
        if cursor.fetchone()[0] is not None:
            return False
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {spec.default} WHERE {spec.key} >= %s AND {spec.key} < %s)",
                       [low, high])
        if not cursor.fetchone()[0]:
            cursor.execute(f"CREATE TABLE {name} PARTITION OF {spec.table} FOR VALUES FROM (%s) TO (%s)",
                           [low, high])
            return True
        cursor.execute(f"CREATE TABLE {name} (LIKE {spec.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                       "INCLUDING STORAGE INCLUDING COMPRESSION)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {spec.default} WHERE {spec.key} >= %s AND {spec.key} < %s RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved", [low, high]
        )
        cursor.execute(f"ALTER TABLE {spec.table} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
                       [low, high])
    return True


def drop_before(spec: Partitioned, before: date) -> list[str]:
    """Drop every weekly partition that ends on or before ``before`` (a Monday) and delete the default
    partition's rows older than it; return the partitions dropped."""
    dropped = []
    with connection.cursor() as cursor:
        wait_briefly_for_locks(cursor)
    for week, name in sorted(weeks(spec).items()):
        if week + WEEK <= before:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {name}")
            dropped.append(name)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {spec.default} WHERE {spec.key} < %s", [spec.bound(before)])
    return dropped


def default_rows(spec: Partitioned) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {spec.default}")
        return int(cursor.fetchone()[0])



# A week's indexes are built as its rows arrive from many streams side by side, which leaves their pages about
# half full; rebuilt once the week is over they are packed to their fill factor (docs/benchmarks.md: the
# benchmark's database went from 19.7 to 17.9 bytes a sample). The marker says it was done.
COMPACTED = "wattwise: indexes rebuilt after the week closed"


def compacted(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", [name])
        row = cursor.fetchone()
    return row is not None and row[0] == COMPACTED


def compact(name: str) -> None:
    """Rebuild a closed week's indexes without holding off its readers or late rows (``REINDEX CONCURRENTLY``,
    outside any transaction), then mark it. It waits for every transaction that might use them: behind a long
    reader it gives up after ``DDL_LOCK_TIMEOUT`` (``LockNotAvailable``) instead of holding the beat worker.
    An attempt cut short leaves invalid copies (``…_ccnew``): they are dropped first."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = '{DDL_LOCK_TIMEOUT}'")
        try:
            cursor.execute(
                "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                "WHERE x.indrelid = to_regclass(%s) AND NOT x.indisvalid", [name]
            )
            for (invalid,) in cursor.fetchall():
                cursor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{invalid}"')
            cursor.execute(f"REINDEX TABLE CONCURRENTLY {name}")
            cursor.execute(f"COMMENT ON TABLE {name} IS %s", [COMPACTED])
        finally:
            cursor.execute("RESET lock_timeout")

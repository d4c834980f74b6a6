"""Raw windows and batch receipts in weekly RANGE partitions (PostgreSQL), and autovacuum for the rollups.

``dashboard_samplewindow`` is partitioned by ``first_ms`` (epoch ms), ``dashboard_batchreceipt`` by
``received_at``, one partition per ISO week (Monday 00:00 UTC), plus a default partition that catches any
row no weekly partition covers, so ingest never fails for want of one. The beat task
``telemetry.maintain_partitions`` (``dashboard.telemetry.partitions``) creates the weeks ahead and drops
expired ones; this migration creates the weeks the existing rows fall in, this week and the next two.

The conversion does not name any column but the partition key and ``id``: ``CREATE TABLE ... (LIKE old
INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (key)``, rows copied, names swapped, then the
old table's primary key, unique constraints, foreign keys and indexes are made again under their own
names, read from the catalogue. A primary key or unique constraint of a partitioned table must contain the
partition key, so the key is appended to them: ``(id, first_ms)``, ``(run_gpu_id, stream, seq, first_ms)``,
``(id, received_at)``, ``(node_id, stream, seq, received_at)``. Receipts therefore no longer guarantee
(node, stream, seq) is stored once by a unique index; ``batch_store._claim_receipt`` does, under a
transaction-level advisory lock on that key (see docs/architecture.md, Storage). ``id`` keeps counting
from where it was, from a sequence owned by the column instead of an identity (partitioned tables have no
identity columns before PostgreSQL 17).

It rewrites both tables under an exclusive lock: on a large database, run ``migrate`` in a maintenance
window. On SQLite it changes nothing but Django's state (retention deletes rows there instead).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from django.db import migrations, models

WEEKS_AHEAD = 2
PARTITIONED = (("dashboard_samplewindow", "first_ms"), ("dashboard_batchreceipt", "received_at"))
# Rollup tables updated in place, many times per row (see docs/architecture.md, Storage, for the figures).
AUTOVACUUM = {
    "dashboard_rungpu": "fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000, "
                        "autovacuum_analyze_scale_factor = 0.05",
    "dashboard_gpuminute": "fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, "
                           "autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01",
}
AUTOVACUUM_RESET = {
    "dashboard_rungpu": "fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, "
                        "autovacuum_analyze_scale_factor",
    "dashboard_gpuminute": "fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_insert_scale_factor, "
                           "autovacuum_analyze_scale_factor",
}


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _bound(key: str, day: date) -> str:
    at = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return str(int(at.timestamp() * 1000)) if key == "first_ms" else f"'{at.isoformat()}'"


def _existing_weeks(cursor, table: str, key: str) -> list[date]:
    """The weeks that hold rows, and this week to WEEKS_AHEAD after it: only those (a stray reading dated
    1970, from a node whose clock was not set yet, makes one partition, not one for every week since)."""
    moment = f"to_timestamp({key} / 1000.0)" if key == "first_ms" else key
    cursor.execute(f"SELECT DISTINCT date_trunc('week', {moment} AT TIME ZONE 'UTC')::date FROM {table}")
    weeks = {row[0] for row in cursor.fetchall()}
    this_week = _monday(datetime.now(UTC).date())
    weeks |= {this_week + timedelta(weeks=i) for i in range(WEEKS_AHEAD + 1)}
    return sorted(weeks)


def _keys(cursor, table: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The table's primary key, unique and foreign-key constraints (name, type, definition) and the
    definitions of its other indexes."""
    cursor.execute(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'f') ORDER BY contype DESC, conname", [table]
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
        "WHERE c.conindid = x.indexrelid AND c.contype IN ('p', 'u', 'x')) ORDER BY i.relname", [table]
    )
    return constraints, [row[0] for row in cursor.fetchall()]


def _with_key(definition: str, key: str, keep: bool) -> str:
    """A PRIMARY KEY / UNIQUE definition with the partition key appended (``keep``) or taken out."""
    match = re.match(r"^(PRIMARY KEY|UNIQUE) \((.*)\)(.*)$", definition)
    assert match, definition
    columns = [c.strip() for c in match.group(2).split(",") if c.strip() != key]
    return f"{match.group(1)} ({', '.join(columns + ([key] if keep else []))}){match.group(3)}"


def _next_id(cursor, table: str) -> tuple[str, int]:
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    sequence = cursor.fetchone()[0]
    cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
    last, called = cursor.fetchone()
    return sequence.split(".")[-1].strip('"'), last + 1 if called else last


def _swap(cursor, table: str, key: str, partitioned: bool) -> None:
    constraints, indexes = _keys(cursor, table)
    sequence, next_id = _next_id(cursor, table)
    new = f"{table}__swap"
    if partitioned:
        cursor.execute(f"CREATE TABLE {new} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                       f"INCLUDING STORAGE INCLUDING COMPRESSION) PARTITION BY RANGE ({key})")
        weeks = _existing_weeks(cursor, table, key)
        for week in weeks:
            cursor.execute(f"CREATE TABLE {table}_p{week:%Y%m%d} PARTITION OF {new} "
                           f"FOR VALUES FROM ({_bound(key, week)}) TO ({_bound(key, week + timedelta(weeks=1))})")
        cursor.execute(f"CREATE TABLE {table}_default PARTITION OF {new} DEFAULT")
    else:
        cursor.execute(f"CREATE TABLE {new} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                       "INCLUDING STORAGE INCLUDING COMPRESSION)")
        cursor.execute(f"ALTER TABLE {new} ALTER COLUMN id DROP DEFAULT")  # the old sequence goes with its table
    cursor.execute(f"INSERT INTO {new} SELECT * FROM {table}")
    cursor.execute(f"DROP TABLE {table}")  # its partitions, and the sequence its id owns, with it
    cursor.execute(f"ALTER TABLE {new} RENAME TO {table}")
    if partitioned:
        cursor.execute(f"CREATE SEQUENCE {sequence} AS bigint OWNED BY {table}.id")
        cursor.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{sequence}'::regclass)")
        cursor.execute("SELECT setval(%s::regclass, %s, false)", [sequence, next_id])
    else:
        cursor.execute(f"ALTER TABLE {table} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY "
                       f"(SEQUENCE NAME {sequence} START WITH {next_id})")
    for name, kind, definition in constraints:
        if kind in ("p", "u"):
            definition = _with_key(definition, key, keep=partitioned)
        cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    for definition in indexes:
        cursor.execute(definition)


def forward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for table, key in PARTITIONED:
            _swap(cursor, table, key, partitioned=True)
        for table, options in AUTOVACUUM.items():
            cursor.execute(f"ALTER TABLE {table} SET ({options})")


def backward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for table, options in AUTOVACUUM_RESET.items():
            cursor.execute(f"ALTER TABLE {table} RESET ({options})")
        for table, key in PARTITIONED:
            _swap(cursor, table, key, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [("telemetry", "0012_encoded_windows")]

    operations = [
        migrations.RunPython(forward, backward),
        migrations.CreateModel(
            name="RawHorizon",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("windows_before_ms", models.BigIntegerField()),
                ("receipts_before", models.DateTimeField()),
                ("retention_days", models.PositiveIntegerField()),
                ("applied_at", models.DateTimeField()),
            ],
        ),
    ]

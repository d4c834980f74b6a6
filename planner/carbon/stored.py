"""Stored grid-intensity rows: writing importer/provider records, and reading them back as the first
step of the core library's fallback chain.

Rows are shared (no project) or a project's own. A project's runs look an hour up in its own rows first,
then in the shared ones, then the library's shipped yearly data: a project's import changes its own
figures and nobody else's.

A row is keyed by (zone, granularity, start, basis, signal, source, forecast?): the same value imported
twice is one row, a re-import with different values updates it, and a forecast never overwrites a
measured value (they are different rows; the lookup prefers the measured one).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from django.db import connection

from dashboard.projects.models import Visitor
from planner.carbon.models import Basis, Granularity, IntensityImport, IntensityRow, Signal
from planner.grid_carbon import HourlyMiss, HourlyTable, IntensityRecord, records
from planner.grid_carbon.regions import UnknownLocationError, locate

_KEY = ("zone", "granularity", "start_utc", "basis", "signal", "source", "is_forecast")
_VALUES = ("intensity_g_per_kwh", "renewable_pct", "cfe_pct", "is_estimated")


def canonical_zone(zone: str) -> str:
    """The zone as the embedded data spells it (``se-se3`` → ``SE-SE3``; a region → its zone)."""
    try:
        found = locate(zone).zone
    except UnknownLocationError:
        return zone
    return found or zone


def to_record(row: IntensityRow) -> IntensityRecord:
    # Rows hold the library's vocabulary (tests/planner/carbon/test_stored_vocabulary.py keeps the two equal).
    return IntensityRecord(
        zone=row.zone,
        start_utc=row.start_utc,
        granularity=cast(records.Granularity, row.granularity),
        intensity_g_per_kwh=row.intensity_g_per_kwh,
        basis=cast(records.Basis, row.basis),
        source=row.source,
        signal=cast(records.Signal, row.signal),
        renewable_pct=row.renewable_pct,
        cfe_pct=row.cfe_pct,
        is_forecast=row.is_forecast,
        is_estimated=row.is_estimated,
    )


@dataclass(frozen=True)
class UpsertCounts:
    created: int
    updated: int
    unchanged: int

    @property
    def changed(self) -> int:
        return self.created + self.updated


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def upsert_records(
    records: Sequence[IntensityRecord], *, origin: str, imported: IntensityImport | None = None,
    project_id: int | None = None,
) -> UpsertCounts:
    """Store records as ``project_id``'s own (``None``: shared) inside the caller's transaction: create
    new rows, update changed ones, leave the rest."""
    if not records:
        return UpsertCounts(0, 0, 0)
    zones = {r.zone for r in records}
    first, last = min(r.start_utc for r in records), max(r.start_utc for r in records)
    existing = {
        tuple(getattr(row, k) for k in _KEY): row
        for row in IntensityRow.objects.owned_by(project_id).filter(
            zone__in=zones, start_utc__gte=first, start_utc__lte=last
        )
    }
    create: list[IntensityRow] = []
    update: list[IntensityRow] = []
    unchanged = 0
    for record in records:
        key = tuple(getattr(record, k) for k in _KEY)
        row = existing.get(key)
        if row is None:
            create.append(
                IntensityRow(
                    **{k: getattr(record, k) for k in (*_KEY, *_VALUES)}, origin=origin, imported=imported,
                    project_id=project_id,
                )
            )
        elif all(_same(getattr(row, k), getattr(record, k)) for k in _VALUES):
            unchanged += 1
        else:
            for k in _VALUES:
                setattr(row, k, getattr(record, k))
            row.origin, row.imported = origin, imported
            update.append(row)
    insert_rows(create)
    IntensityRow.objects.bulk_update(update, [*_VALUES, "origin", "imported", "updated_at"], batch_size=2000)
    return UpsertCounts(len(create), len(update), unchanged)


def insert_rows(rows: Sequence[IntensityRow]) -> None:
    """Insert new rows: on PostgreSQL with COPY (building 5,000 INSERT rows costs the ORM more than the
    database's work, and a 60 MB import is ~900,000 rows); elsewhere with ``bulk_create``."""
    if connection.vendor != "postgresql":
        IntensityRow.objects.bulk_create(rows, batch_size=2000)
        return
    fields = [f for f in IntensityRow._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.attname if f.column is None else f.column) for f in fields)
    table = connection.ops.quote_name(IntensityRow._meta.db_table)
    # wrap_database_errors: a unique violation raises Django's IntegrityError, as bulk_create's would.
    with connection.wrap_database_errors, connection.cursor() as cursor, cursor.cursor.copy(
        f"COPY {table} ({columns}) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row([f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields])


def _preference(row: IntensityRow) -> tuple[bool, bool, bool, bool]:
    # HourlyTable keeps the later of two equally good records for a period, so feed it the preferred
    # rows last: the project's own before shared ones, then lifecycle (the basis of the embedded yearly
    # data, so fallback hours stay comparable), measured rather than forecast, averages rather than
    # marginal rates.
    return (row.project_id is not None, row.basis == Basis.LIFECYCLE, not row.is_forecast, row.signal == Signal.AVERAGE)


def _rows(
    zones: Iterable[str], start_utc: datetime, end_utc: datetime, project_id: int | None, *, hourly_only: bool,
    forecasts: bool | None,
) -> list[IntensityRow]:
    """Rows ``project_id`` may use for ``zones`` whose period may cover ``[start_utc, end_utc]``, preferred last.

    Coarser rows (a day, a month, a year from an Electricity Maps CSV) start before the hours they
    cover, so the query reaches back a year unless only hourly rows are wanted.
    """
    zones = sorted(set(zones))
    if not zones:
        return []
    reach = timedelta(hours=0) if hourly_only else timedelta(days=366)
    rows = IntensityRow.objects.for_project(project_id).filter(
        zone__in=zones, start_utc__gte=start_utc - reach, start_utc__lte=end_utc
    )
    if hourly_only:
        rows = rows.filter(granularity=Granularity.HOUR)
    if forecasts is not None:
        rows = rows.filter(is_forecast=forecasts)
    return sorted(rows, key=lambda r: (_preference(r), r.updated_at))


def stored_records(
    zones: Iterable[str], start_utc: datetime, end_utc: datetime, *, project_id: int | None,
    hourly_only: bool = False, forecasts: bool | None = None,
) -> list[IntensityRecord]:
    """Records ``project_id`` may use (its own and shared ones) for ``zones`` over the span, preferred last."""
    rows = _rows(zones, start_utc, end_utc, project_id, hourly_only=hourly_only, forecasts=forecasts)
    return [to_record(r) for r in rows]


class StoredHourly:
    """A :class:`planner.grid_carbon.HourlyLookup` over stored rows for a set of zones and a span: the
    project's own rows first, then the shared ones (a miss in both falls through to the shipped data)."""

    def __init__(self, zones: Iterable[str], start_utc: datetime, end_utc: datetime, *, project_id: int | None) -> None:
        rows = _rows(zones, start_utc, end_utc, project_id, hourly_only=False, forecasts=None)
        self._own = HourlyTable([to_record(r) for r in rows if r.project_id is not None], name="the project's data")
        self._shared = HourlyTable([to_record(r) for r in rows if r.project_id is None], name="imported data")

    def lookup(self, zone: str, hour_utc: datetime) -> IntensityRecord | HourlyMiss:
        found = self._own.lookup(zone, hour_utc)
        return found if isinstance(found, IntensityRecord) else self._shared.lookup(zone, hour_utc)


def zones_with_data(user: Visitor | None) -> list[Mapping[str, object]]:
    """What the data page lists: per owner, zone and source that ``user`` may see, how many rows and the
    span they cover."""
    from django.db.models import Count, Max, Min

    return list(
        IntensityRow.objects.visible_to(user)
        .values("zone", "source", "granularity", "basis", "is_forecast", "project__name")
        .annotate(rows=Count("id"), first=Min("start_utc"), last=Max("start_utc"))
        .order_by("zone", "source", "granularity", "project__name")
    )

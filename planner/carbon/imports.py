"""Importing files into the database: all or nothing, and idempotent.

The core parsers read the whole file first (any problem raises ``CarbonImportError`` naming the line or
JSON path, before anything is written); then every row is written in one transaction. Rows already
stored with the same values are left alone, so importing the same file twice changes nothing the second
time — not even the import history, which only records imports that changed something.

Grid-intensity formats (Electricity Maps CSV and API JSON, UK Carbon Intensity JSON, WattTime JSON)
become :class:`IntensityRow` rows, a project's own when a project is given (its runs alone use them)
or shared by every project when none is (the callers let only staff do that: :mod:`planner.carbon.access`);
CodeCarbon's ``emissions.csv`` becomes :class:`ImportedRun` rows (needs a project), each with CodeCarbon's
own figure next to ours.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction

from dashboard.projects.models import Project, Visitor, signed_in
from planner.carbon.models import ImportedRun, IntensityImport, IntensityRow
from planner.carbon.placing import WORLD, project_settings
from planner.carbon.recompute import mark_stale_for_intensity, queue_recompute
from planner.carbon.stored import StoredHourly, canonical_zone, upsert_records
from planner.grid_carbon import IntensityRecord, IntensityResolver, compute_emissions, locate
from planner.grid_carbon.importers import (
    CarbonImportError,
    CodeCarbonRun,
    ImportFormat,
    detect_format,
    parse_codecarbon_csv,
    parse_electricitymaps_csv,
    parse_electricitymaps_json,
    parse_uk_carbon_intensity_json,
    parse_watttime_json,
)
from planner.grid_carbon.records import Basis
from planner.grid_carbon.regions import UnknownLocationError
from planner.units import J_PER_KWH

FORMAT_LABELS = {
    ImportFormat.ELECTRICITYMAPS_CSV: "Electricity Maps CSV",
    ImportFormat.ELECTRICITYMAPS_JSON: "Electricity Maps API JSON",
    ImportFormat.UK_CARBON_INTENSITY_JSON: "UK Carbon Intensity API JSON",
    ImportFormat.WATTTIME_JSON: "WattTime API JSON",
    ImportFormat.CODECARBON_CSV: "CodeCarbon emissions.csv",
}


@dataclass
class ImportResult:
    format: str
    filename: str
    rows: int
    created: int
    updated: int
    unchanged: int
    zones: list[str] = field(default_factory=list)
    first_utc: datetime | None = None
    last_utc: datetime | None = None
    import_id: int | None = None
    runs_marked_stale: int = 0

    @property
    def changed(self) -> bool:
        return self.created + self.updated > 0

    @property
    def message(self) -> str:
        what = "runs" if self.format == FORMAT_LABELS[ImportFormat.CODECARBON_CSV] else "rows"
        if not self.changed:
            return (
                f"{self.filename}: nothing new — all {self.rows} {what} are already stored with the same "
                "values; nothing was changed"
            )
        span = ""
        if self.first_utc and self.last_utc:
            span = f" from {self.first_utc:%Y-%m-%d %H:%M} to {self.last_utc:%Y-%m-%d %H:%M} UTC"
        zones = f" for {', '.join(self.zones)}" if self.zones else ""
        stale = f"; {self.runs_marked_stale} run(s) will be recomputed" if self.runs_marked_stale else ""
        return (
            f"{self.filename} ({self.format}): {self.created} {what} added, {self.updated} updated, "
            f"{self.unchanged} unchanged{zones}{span}{stale}"
        )


def parse_intensity(
    data: bytes, filename: str, found: ImportFormat, *, zone: str | None, basis: Basis
) -> list[IntensityRecord]:
    """Parse a grid-intensity file of a known format; zones are spelled as the embedded data does."""
    override = canonical_zone(zone) if zone else None
    if found is ImportFormat.ELECTRICITYMAPS_CSV:
        records = parse_electricitymaps_csv(data, filename=filename, basis=basis, zone=override)
    elif found is ImportFormat.ELECTRICITYMAPS_JSON:
        records = parse_electricitymaps_json(data, default_basis=basis, zone=override)
    elif found is ImportFormat.UK_CARBON_INTENSITY_JSON:
        records = parse_uk_carbon_intensity_json(data, zone=override)
    else:
        records = parse_watttime_json(data, zone=override)
    return [r if override else replace(r, zone=canonical_zone(r.zone)) for r in records]


@dataclass(frozen=True)
class ImportOptions:
    """How one file is imported: the same options for a file read whole (:func:`import_file`) and one read as
    a stream (:func:`planner.carbon.streaming.import_path`), so an option cannot reach one path only."""

    zone: str | None = None  # every record's zone (None: the zones the file names)
    basis: Basis = "lifecycle"  # for formats that do not say
    project: Project | None = None  # whose rows (None: shared by every project)
    timezone_name: str = "UTC"  # of a CodeCarbon file's timestamps
    user: Visitor | None = None  # who imported it
    via: str = IntensityImport.Via.UPLOAD


DEFAULT_OPTIONS = ImportOptions()
"""A shared upload: every zone the file names, lifecycle basis, UTC."""


def import_file(data: bytes, filename: str, options: ImportOptions = DEFAULT_OPTIONS) -> ImportResult:
    """Detect, parse and store one file as ``options.project``'s (``None``: shared); raise
    ``CarbonImportError`` (nothing written) if it is bad."""
    project, user, via = options.project, options.user, options.via
    found = detect_format(data, filename)
    digest = hashlib.sha256(data).hexdigest()
    if found is ImportFormat.CODECARBON_CSV:
        if project is None:
            raise CarbonImportError(
                FORMAT_LABELS[found], "a CodeCarbon file holds runs: choose the project to import them into"
            )
        runs = parse_codecarbon_csv(data, timezone=options.timezone_name)
        return _store_codecarbon(runs, project, filename, digest, user, via)
    records = parse_intensity(data, filename, found, zone=options.zone, basis=options.basis)
    return _store_intensity(records, FORMAT_LABELS[found], filename, digest, user, via, project)


def new_import(
    fmt: str, filename: str, digest: str, user: Visitor | None, via: str, project: Project | None
) -> IntensityImport:
    return IntensityImport.objects.create(
        filename=filename[:255],
        format=fmt,
        sha256=digest,
        imported_by=signed_in(user),
        via=via,
        project=project,
    )


def _store_intensity(
    records: list[IntensityRecord], fmt: str, filename: str, digest: str, user: Visitor | None, via: str,
    project: Project | None,
) -> ImportResult:
    zones = sorted({r.zone for r in records})
    first, last = min(r.start_utc for r in records), max(r.start_utc for r in records)
    try:
        with transaction.atomic():
            return _write_intensity(records, fmt, filename, digest, user, via, project, zones, first, last)
    except IntegrityError:
        # Another import stored some of the same rows between our read and our write.
        raise CarbonImportError(fmt, "another import wrote the same rows at the same moment; import again") from None


def _write_intensity(
    records: list[IntensityRecord], fmt: str, filename: str, digest: str, user: Visitor | None, via: str,
    project: Project | None, zones: list[str], first: datetime, last: datetime,
) -> ImportResult:
    """Write the rows (inside the caller's transaction); mark the runs those hours affect."""
    project_id = project.pk if project else None
    batch = new_import(fmt, filename, digest, user, via, project)
    counts = upsert_records(records, origin=IntensityRow.Origin.FILE, imported=batch, project_id=project_id)
    result = ImportResult(fmt, filename, len(records), counts.created, counts.updated, counts.unchanged,
                          zones, first, last)
    return close_batch(batch, result, project_id)


def close_batch(batch: IntensityImport, result: ImportResult, project_id: int | None) -> ImportResult:
    """Record what an import changed on its batch (inside the import's transaction), or drop the batch if it
    changed nothing; flag and queue the runs whose figures it changes."""
    if not result.changed:
        batch.delete()  # a re-import that changed nothing leaves no trace
        return result
    assert result.first_utc is not None and result.last_utc is not None
    batch.zones = ", ".join(result.zones)[:500]
    batch.first_utc, batch.last_utc = result.first_utc, result.last_utc
    batch.rows_created, batch.rows_updated, batch.rows_unchanged = result.created, result.updated, result.unchanged
    batch.save()
    run_ids = mark_stale_for_intensity(result.zones, result.first_utc, result.last_utc, project_id=project_id)
    queue_recompute(run_ids)
    result.import_id, result.runs_marked_stale = batch.pk, len(run_ids)
    return result


# --- CodeCarbon -------------------------------------------------------------------------------------


def energy_by_hour(start_utc: datetime, end_utc: datetime, energy_kwh: float) -> dict[datetime, float]:
    """Spread ``energy_kwh`` evenly over ``[start, end)`` into UTC hours, in joules (CodeCarbon gives totals)."""
    energy_j = energy_kwh * J_PER_KWH
    seconds = (end_utc - start_utc).total_seconds()
    end_hour = end_utc.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if seconds <= 0:
        return {end_hour: energy_j}
    out: dict[datetime, float] = {}
    hour = start_utc.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour < end_utc:
        nxt = hour + timedelta(hours=1)
        overlap = (min(nxt, end_utc) - max(hour, start_utc)).total_seconds()
        if overlap > 0:
            out[hour] = energy_j * overlap / seconds
        hour = nxt
    return out


def _our_figure(run: CodeCarbonRun, default_where: str, project_id: int) -> tuple[float, str, str]:
    """Our emissions for a CodeCarbon run: its energy (already × its PUE) through our fallback chain."""
    where, note = run.where or default_where, ""
    if not where:
        where, note = "", "no location in the file and no project default: world average"
    try:
        location = locate(where) if where else None
    except UnknownLocationError as exc:
        location, note = None, f"{exc}; world average used"
    hours = energy_by_hour(run.start_utc, run.end_utc, run.energy_kwh)
    zone = location.zone if location else None
    resolver = IntensityResolver(StoredHourly([zone] if zone else [], min(hours), max(hours), project_id=project_id))
    report = compute_emissions(hours, where=location or WORLD, pue=1.0, resolver=resolver)
    if report.fallback_hours:
        steps = ", ".join(f"{k} {v} h" for k, v in sorted(report.steps.items()))
        note = "; ".join(filter(None, [note, f"intensity: {steps}"]))
    return report.location_emissions_g, where, note


def _store_codecarbon(
    runs: list[CodeCarbonRun], project: Project, filename: str, digest: str, user: Visitor | None, via: str
) -> ImportResult:
    default_where = project_settings(project.pk).default_where
    fmt = FORMAT_LABELS[ImportFormat.CODECARBON_CSV]
    created = updated = unchanged = 0
    with transaction.atomic():
        batch = new_import(fmt, filename, digest, user, via, project)
        for run in runs:
            ours_g, where, note = _our_figure(run, default_where, project.pk)
            values = {
                "project_name": run.project_name[:200],
                "experiment_id": run.experiment_id[:200],
                "started_utc": run.start_utc,
                "duration_s": run.duration_s,
                "energy_kwh": run.energy_kwh,
                "codecarbon_emissions_g": run.emissions_g,
                "where": where[:100],
                "codecarbon_pue": run.pue,
                "emissions_g": ours_g,
                "note": note,
            }
            key = {"project": project, "run_key": (run.run_id or f"line {run.line}")[:200], "ended_utc": run.end_utc}
            existing = ImportedRun.objects.filter(**key).first()
            if existing is None:
                ImportedRun.objects.create(**key, **values, imported=batch)
                created += 1
            elif all(_same(getattr(existing, k), v) for k, v in values.items()):
                unchanged += 1
            else:
                for k, v in values.items():
                    setattr(existing, k, v)
                existing.imported = batch
                existing.save()
                updated += 1
        result = ImportResult(fmt, filename, len(runs), created, updated, unchanged,
                              first_utc=min(r.start_utc for r in runs), last_utc=max(r.end_utc for r in runs))
        if created + updated == 0:
            batch.delete()
            return result
        batch.first_utc, batch.last_utc = result.first_utc, result.last_utc
        batch.rows_created, batch.rows_updated, batch.rows_unchanged = created, updated, unchanged
        batch.zones = f"project {project.name}"[:500]
        batch.save()
        result.import_id = batch.pk
    return result


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
    return a == b

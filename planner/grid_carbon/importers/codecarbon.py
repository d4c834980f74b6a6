"""CodeCarbon ``emissions.csv``: runs measured elsewhere, to bring into Wattwise.

One row per run (or per flush of a tracker). The columns used here (CodeCarbon 2.x/3.x; older files
lack some of the optional ones)::

    timestamp, project_name, run_id, experiment_id, duration, emissions, emissions_rate,
    cpu_power, gpu_power, ram_power, cpu_energy, gpu_energy, ram_energy, energy_consumed,
    country_name, country_iso_code, region, cloud_provider, cloud_region, on_cloud, pue, …

Units, fixed by CodeCarbon: ``duration`` s, ``emissions`` kg CO₂e, ``*_energy`` and
``energy_consumed`` kWh, ``*_power`` W. Two traps:

* ``timestamp`` is written with ``datetime.now()`` — the *local* time of the machine, without an offset.
  Pass the machine's ``timezone`` (an IANA name such as ``Europe/Paris``); UTC is assumed otherwise.
  It marks the *end* of the measurement.
* ``energy_consumed`` already includes CodeCarbon's ``pue`` multiplier (default 1.0).
* A tracker that flushes (``tracker.flush()``, API intervals) writes several rows for one ``run_id``,
  each holding the *cumulative* totals since ``start()``. Summing them would double count, so the
  importer keeps the last row of each run (checking that the totals never decrease) and reports how
  many rows it folded in ``rows``. Rows without a ``run_id`` (very old files) are runs of their own.

Required: ``timestamp``, ``duration``, ``emissions``, ``energy_consumed``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from planner.grid_carbon.importers.errors import CarbonImportError
from planner.grid_carbon.importers.text import csv_number, decode_text
from planner.grid_carbon.importers.timestamps import parse_timestamp

FORMAT = "CodeCarbon emissions.csv"
REQUIRED = ("timestamp", "duration", "emissions", "energy_consumed")


def looks_like_codecarbon_csv(header: Sequence[str]) -> bool:
    """True if the header row is a CodeCarbon ``emissions.csv`` header."""
    names = {h.strip().lower().lstrip("\ufeff") for h in header}
    return {"timestamp", "emissions", "energy_consumed"} <= names


@dataclass(frozen=True, slots=True)
class CodeCarbonRun:
    """One run from a CodeCarbon ``emissions.csv``, in Wattwise units."""

    line: int
    end_utc: datetime
    duration_s: float
    energy_kwh: float
    emissions_kg: float
    project_name: str = ""
    run_id: str = ""
    experiment_id: str = ""
    cpu_energy_kwh: float | None = None
    gpu_energy_kwh: float | None = None
    ram_energy_kwh: float | None = None
    country_name: str = ""
    country_iso3: str = ""
    region: str = ""
    cloud_provider: str = ""
    cloud_region: str = ""
    on_cloud: bool | None = None
    pue: float | None = None
    gpu_count: int | None = None
    gpu_model: str = ""
    codecarbon_version: str = ""
    rows: int = 1

    @property
    def start_utc(self) -> datetime:
        """When the measurement began: the end timestamp minus the duration."""
        return self.end_utc - timedelta(seconds=self.duration_s)

    @property
    def where(self) -> str | None:
        """A location :func:`planner.grid_carbon.locate` understands: ``gcp:europe-west1``, else ISO3."""
        if self.cloud_provider in ("gcp", "aws", "azure") and self.cloud_region:
            return f"{self.cloud_provider}:{self.cloud_region}"
        return self.country_iso3 or None

    @property
    def emissions_g(self) -> float:
        """Emissions in grams."""
        return self.emissions_kg * 1000.0


def parse_codecarbon_csv(data: bytes | str, *, timezone: str | tzinfo = UTC) -> list[CodeCarbonRun]:
    """Parse a CodeCarbon ``emissions.csv`` into one :class:`CodeCarbonRun` per run, sorted by end time.

    Identical repeated rows are kept once; two different rows for the same ``run_id`` and timestamp are
    an error, and so are cumulative rows whose totals decrease. Raises :class:`CarbonImportError`.
    """
    tz = _timezone(timezone)
    reader = csv.reader(io.StringIO(decode_text(data, FORMAT)))
    header = next(reader, None)
    if header is None:
        raise CarbonImportError(FORMAT, "the file is empty")
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise CarbonImportError(
            FORMAT, f"not a CodeCarbon header: missing column(s) {', '.join(missing)}", line=1
        )
    if len(set(names)) != len(names):
        raise CarbonImportError(FORMAT, "a column name appears twice", line=1)
    index = {name: i for i, name in enumerate(names)}

    unique: dict[tuple[str, datetime], CodeCarbonRun] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise CarbonImportError(FORMAT, f"expected {len(header)} columns, found {len(row)}", line=line)
        run = _run(row, index, line, tz)
        key = (run.run_id or f"(line {line})", run.end_utc)
        earlier = unique.get(key)
        if earlier is None:
            unique[key] = run
        elif _comparable(earlier) != _comparable(run):
            raise CarbonImportError(
                FORMAT,
                f"run {run.run_id or '(no run_id)'} at {run.end_utc.isoformat()} appears on lines "
                f"{earlier.line} and {line} with different values",
                line=line,
            )
    if not unique:
        raise CarbonImportError(FORMAT, "no data rows after the header")

    by_run: dict[str, list[CodeCarbonRun]] = {}
    for (run_key, _), run in unique.items():
        by_run.setdefault(run_key, []).append(run)
    runs = [_fold_cumulative(rows) for rows in by_run.values()]
    return sorted(runs, key=lambda r: (r.end_utc, r.line))


def _fold_cumulative(rows: list[CodeCarbonRun]) -> CodeCarbonRun:
    """Keep the last of a run's cumulative rows, after checking its totals never go down."""
    rows.sort(key=lambda r: (r.end_utc, r.line))
    for before, after in pairwise(rows):
        for name in ("duration_s", "energy_kwh", "emissions_kg"):
            if getattr(after, name) < getattr(before, name):
                raise CarbonImportError(
                    FORMAT,
                    f"rows of run {after.run_id} are cumulative, but {name.split('_')[0]} decreases from "
                    f"line {before.line} to line {after.line}",
                    line=after.line,
                )
    return replace(rows[-1], rows=len(rows))


def _comparable(run: CodeCarbonRun) -> CodeCarbonRun:
    return replace(run, line=0)


def _timezone(value: str | tzinfo) -> tzinfo:
    if isinstance(value, tzinfo):
        return value
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise CarbonImportError(FORMAT, f"unknown timezone {value!r}") from None


def _run(row: Sequence[str], index: dict[str, int], line: int, tz: tzinfo) -> CodeCarbonRun:
    def text(name: str) -> str:
        return row[index[name]].strip() if name in index else ""

    def number(name: str, *, required: bool = False) -> float | None:
        return csv_number(text(name), FORMAT, line, name, required=required)

    try:
        end = parse_timestamp(text("timestamp"), naive_tz=tz)
    except ValueError as exc:
        raise CarbonImportError(FORMAT, str(exc), line=line, field="timestamp") from None
    duration_s = number("duration", required=True)
    energy_kwh = number("energy_consumed", required=True)
    emissions_kg = number("emissions", required=True)
    assert duration_s is not None and energy_kwh is not None and emissions_kg is not None
    on_cloud_text = text("on_cloud").lower()
    if on_cloud_text not in ("", "y", "n", "yes", "no", "true", "false", "1", "0"):
        raise CarbonImportError(FORMAT, f"not a boolean: {on_cloud_text!r}", line=line, field="on_cloud")
    gpu_count = number("gpu_count")
    return CodeCarbonRun(
        line=line,
        end_utc=end,
        duration_s=duration_s,
        energy_kwh=energy_kwh,
        emissions_kg=emissions_kg,
        project_name=text("project_name"),
        run_id=text("run_id"),
        experiment_id=text("experiment_id"),
        cpu_energy_kwh=number("cpu_energy"),
        gpu_energy_kwh=number("gpu_energy"),
        ram_energy_kwh=number("ram_energy"),
        country_name=text("country_name"),
        country_iso3=text("country_iso_code").upper(),
        region=text("region"),
        cloud_provider=text("cloud_provider").lower(),
        cloud_region=text("cloud_region"),
        on_cloud=None if not on_cloud_text else on_cloud_text in ("y", "yes", "true", "1"),
        pue=number("pue"),
        gpu_count=int(gpu_count) if gpu_count is not None else None,
        gpu_model=text("gpu_model"),
        codecarbon_version=text("codecarbon_version"),
    )

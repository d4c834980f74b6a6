"""Electricity Maps downloadable CSV datasets (``{ZONE}_{YEAR}_{granularity}.csv``).

Two header generations exist and both are accepted, with ``₂`` or ``2`` and any letter case:

* older (2021–2023 downloads)::

    Datetime (UTC), Country, Zone Name, Zone Id, Carbon Intensity gCO₂eq/kWh (direct),
    Carbon Intensity gCO₂eq/kWh (LCA), Low Carbon Percentage, Renewable Percentage, Data Source,
    Data Estimated, Data Estimation Method

* newer (2024+)::

    Datetime (UTC), Country, Zone name, Zone id, Carbon intensity gCO₂eq/kWh (direct),
    Carbon intensity gCO₂eq/kWh (Life cycle), Carbon-free energy percentage (CFE%),
    Renewable energy percentage (RE%), Data source, Data estimated, Data estimation method

Each row carries both a *direct* and a *lifecycle* intensity; the importer returns one of them
(``basis``, lifecycle by default, matching the embedded Electricity Maps yearly data). "Low carbon
percentage" is the older name of the carbon-free share (renewables + nuclear).

Granularity comes from the ``granularity`` argument, else the file name, else the spacing of the
rows. 5-minute exports are averaged into hours. These datasets are licensed to the user who
downloaded them; Wattwise imports them but never ships them.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from datetime import datetime

from planner.grid_carbon.importers.errors import CarbonImportError
from planner.grid_carbon.importers.series import (
    Draft,
    Point,
    average_into_hours,
    check_period_start,
    finalize,
    mean_or_none,
)
from planner.grid_carbon.importers.text import csv_number, decode_text
from planner.grid_carbon.importers.timestamps import parse_timestamp
from planner.grid_carbon.records import Basis, Granularity, IntensityRecord

FORMAT = "Electricity Maps CSV"
SOURCE = "Electricity Maps (CSV import)"

_COLUMNS = {
    "datetime (utc)": "datetime",
    "country": "country",
    "zone name": "zone_name",
    "zone id": "zone_id",
    "carbon intensity gco2eq/kwh (direct)": "ci_direct",
    "carbon intensity gco2eq/kwh (lca)": "ci_lifecycle",
    "carbon intensity gco2eq/kwh (life cycle)": "ci_lifecycle",
    "low carbon percentage": "cfe_pct",
    "carbon-free energy percentage (cfe%)": "cfe_pct",
    "renewable percentage": "renewable_pct",
    "renewable energy percentage (re%)": "renewable_pct",
    "data source": "data_source",
    "data estimated": "estimated",
    "data estimation method": "estimation_method",
}
_FILE_GRANULARITY = {
    "hourly": "hour",
    "daily": "day",
    "monthly": "month",
    "yearly": "year",
    "5_minute": "5_minute",
}
_FILENAME = re.compile(r"_(hourly|daily|monthly|yearly|5_minute)\.csv$", re.IGNORECASE)


def normalise_header(name: str) -> str:
    """Lower-case, ``₂`` → ``2``, single spaces: the form both header generations share."""
    return " ".join(name.replace("₂", "2").replace("\ufeff", "").strip().lower().split())


def looks_like_electricitymaps_csv(header: Sequence[str]) -> bool:
    """True if the header row is an Electricity Maps export (used by format detection).

    Any ``Datetime (…)`` column counts, so an export in local time is routed to the parser, which
    refuses it with "timestamps must be UTC" instead of "unrecognised file".
    """
    names = {normalise_header(h) for h in header}
    return any(n.startswith("datetime") for n in names) and any(n.startswith("carbon intensity") for n in names)


def parse_electricitymaps_csv(
    data: bytes | str,
    *,
    filename: str | None = None,
    basis: Basis = "lifecycle",
    granularity: Granularity | None = None,
    zone: str | None = None,
) -> list[IntensityRecord]:
    """Parse an Electricity Maps CSV export into normalised records, or raise :class:`CarbonImportError`.

    ``zone`` overrides the file's ``Zone id`` (to file the data under a site's zone).
    """
    text = decode_text(data, FORMAT)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise CarbonImportError(FORMAT, "the file is empty")
    columns = _map_header(header)
    wanted = "ci_lifecycle" if basis == "lifecycle" else "ci_direct"
    if wanted not in columns:
        label = "LCA / Life cycle" if basis == "lifecycle" else "direct"
        raise CarbonImportError(FORMAT, f"no 'Carbon intensity gCO₂eq/kWh ({label})' column", line=1)

    rows: list[tuple[int, datetime, str, float, float | None, float | None, bool]] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise CarbonImportError(FORMAT, f"expected {len(header)} columns, found {len(row)}", line=line)
        rows.append(_parse_row(row, columns, wanted, header, line, zone))
    if not rows:
        raise CarbonImportError(FORMAT, "no data rows after the header")

    step = _granularity(granularity, filename, rows)
    if step == "5_minute":
        points = [
            Point(z, start, value, f"line {line}", line, re_pct, cfe, False, est)
            for line, start, z, value, re_pct, cfe, est in rows
        ]
        drafts = average_into_hours(points, period_s=300, format_name=FORMAT, make_record=_hour_record(basis))
        return finalize(drafts, format_name=FORMAT)

    period: Granularity = step  # type: ignore[assignment]  # "5_minute" handled above
    drafts = []
    for line, start, z, value, re_pct, cfe, est in rows:
        problem = check_period_start(start, period)
        if problem:
            raise CarbonImportError(
                FORMAT, f"{problem} (granularity {period})", line=line, field="Datetime (UTC)"
            )
        record = IntensityRecord(
            zone=z,
            start_utc=start,
            granularity=period,
            intensity_g_per_kwh=value,
            basis=basis,
            source=SOURCE,
            renewable_pct=re_pct,
            cfe_pct=cfe,
            is_estimated=est,
        )
        drafts.append(Draft(record, f"line {line}", line))
    return finalize(drafts, format_name=FORMAT)


def _map_header(header: Sequence[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = normalise_header(raw)
        if name.startswith("carbon intensity") and name not in _COLUMNS:
            raise CarbonImportError(
                FORMAT,
                f"unexpected unit or basis in column {raw!r}; expected gCO₂eq/kWh (direct) or (LCA / Life cycle)",
                line=1,
                field=raw,
            )
        if name.startswith("datetime") and name != "datetime (utc)":
            raise CarbonImportError(FORMAT, f"timestamps must be UTC ('Datetime (UTC)'), got {raw!r}", line=1)
        key = _COLUMNS.get(name)
        if key is not None:
            if key in columns:
                raise CarbonImportError(FORMAT, f"column {raw!r} appears twice", line=1, field=raw)
            columns[key] = index
    missing = [
        label for key, label in (("datetime", "Datetime (UTC)"), ("zone_id", "Zone id")) if key not in columns
    ]
    if missing:
        raise CarbonImportError(
            FORMAT, f"not an Electricity Maps header: missing column(s) {', '.join(missing)}", line=1
        )
    return columns


def _parse_row(
    row: Sequence[str],
    columns: dict[str, int],
    wanted: str,
    header: Sequence[str],
    line: int,
    zone_override: str | None,
) -> tuple[int, datetime, str, float, float | None, float | None, bool]:
    def cell(key: str) -> str:
        return row[columns[key]].strip() if key in columns else ""

    try:
        start = parse_timestamp(cell("datetime"))
    except ValueError as exc:
        raise CarbonImportError(FORMAT, str(exc), line=line, field=header[columns["datetime"]]) from None
    zone = zone_override or cell("zone_id")
    if not zone:
        raise CarbonImportError(FORMAT, "empty zone id", line=line, field=header[columns["zone_id"]])
    value = _number(cell(wanted), line, header[columns[wanted]], required=True)
    assert value is not None
    re_pct = _percent(cell("renewable_pct"), line, header, columns, "renewable_pct")
    cfe = _percent(cell("cfe_pct"), line, header, columns, "cfe_pct")
    estimated = cell("estimated").lower()
    if estimated not in ("", "true", "false", "1", "0", "yes", "no"):
        raise CarbonImportError(
            FORMAT, f"not a boolean: {estimated!r}", line=line, field=header[columns["estimated"]]
        )
    return line, start, zone, value, re_pct, cfe, estimated in ("true", "1", "yes")


def _number(text: str, line: int, field: str, *, required: bool) -> float | None:
    return csv_number(text, FORMAT, line, field, required=required)


def _percent(text: str, line: int, header: Sequence[str], columns: dict[str, int], key: str) -> float | None:
    if key not in columns:
        return None
    value = _number(text, line, header[columns[key]], required=False)
    if value is not None and value > 100:
        raise CarbonImportError(
            FORMAT, f"percentage above 100: {text}", line=line, field=header[columns[key]]
        )
    return value


def _granularity(
    explicit: Granularity | None,
    filename: str | None,
    rows: Sequence[tuple[int, datetime, str, float, float | None, float | None, bool]],
) -> str:
    if explicit is not None:
        return explicit
    if filename:
        match = _FILENAME.search(filename)
        if match:
            return _FILE_GRANULARITY[match.group(1).lower()]
    by_zone: dict[str, list[datetime]] = {}
    for _, start, zone, *_rest in rows:
        by_zone.setdefault(zone, []).append(start)
    for starts in by_zone.values():
        starts.sort()
        if len(starts) >= 2:
            seconds = (starts[1] - starts[0]).total_seconds()
            if seconds == 300:
                return "5_minute"
            if seconds == 3600:
                return "hour"
            if seconds == 86400:
                return "day"
            if 28 * 86400 <= seconds <= 31 * 86400:
                return "month"
            if 365 * 86400 <= seconds <= 366 * 86400:
                return "year"
            raise CarbonImportError(FORMAT, f"cannot infer granularity from a spacing of {seconds:g} s")
    raise CarbonImportError(
        FORMAT,
        "cannot infer granularity from a single row per zone; name the file like FR_2024_yearly.csv "
        "or pass granularity=",
    )


def _hour_record(basis: Basis) -> Callable[[str, datetime, float, Sequence[Point]], IntensityRecord]:
    def make(zone: str, hour: datetime, mean: float, members: Sequence[Point]) -> IntensityRecord:
        return IntensityRecord(
            zone=zone,
            start_utc=hour,
            granularity="hour",
            intensity_g_per_kwh=mean,
            basis=basis,
            source=SOURCE,
            renewable_pct=mean_or_none([p.renewable_pct for p in members]),
            cfe_pct=mean_or_none([p.cfe_pct for p in members]),
            is_estimated=any(p.is_estimated for p in members),
        )

    return make

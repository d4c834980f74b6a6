"""Electricity Maps API v3 JSON: ``carbon-intensity/latest``, ``/history``, ``/forecast`` (and ``/past-range``).

Shapes (``datetime`` is the start of the UTC hour; values are gCO₂eq/kWh)::

    latest    {"zone": "DE", "carbonIntensity": 302, "datetime": "…Z", "updatedAt": "…",
               "emissionFactorType": "lifecycle", "isEstimated": false, "estimationMethod": null}
    history   {"zone": "DE", "history": [ <latest-shaped entries>, … 24 hourly ] }
    forecast  {"zone": "DE", "forecast": [ {"carbonIntensity": 250, "datetime": "…Z"}, … ], "updatedAt": "…"}
    past-range {"zone": "DE", "data": [ <latest-shaped entries> ] }

``emissionFactorType`` says lifecycle or direct; when absent (forecasts) Electricity Maps' default,
lifecycle, is assumed unless ``default_basis`` says otherwise. A ``null`` intensity (Electricity Maps
sends one when estimations are disabled and a value is missing) is an error: the importer does not fill
holes.
"""

from __future__ import annotations

from typing import Any

from planner.grid_carbon.importers.errors import CarbonImportError
from planner.grid_carbon.importers.series import Draft, check_period_start, finalize
from planner.grid_carbon.importers.text import load_json
from planner.grid_carbon.importers.timestamps import parse_timestamp
from planner.grid_carbon.records import BASES, Basis, IntensityRecord, check_intensity

FORMAT = "Electricity Maps API JSON"
SOURCE = "Electricity Maps API"
LIST_KEYS = ("history", "forecast", "data")


def looks_like_electricitymaps_json(payload: Any) -> bool:
    """True for the API v3 carbon-intensity shapes (used by format detection)."""
    if not isinstance(payload, dict):
        return False
    if "carbonIntensity" in payload and "datetime" in payload:
        return True
    return "zone" in payload and any(isinstance(payload.get(key), list) for key in LIST_KEYS)


def parse_electricitymaps_json(
    data: bytes | str | dict[str, Any],
    *,
    default_basis: Basis = "lifecycle",
    zone: str | None = None,
) -> list[IntensityRecord]:
    """Parse a v3 latest/history/forecast/past-range body into hourly records, or raise."""
    payload = load_json(data, FORMAT)
    if not isinstance(payload, dict):
        raise CarbonImportError(FORMAT, "expected a JSON object at the top level")
    top_zone = payload.get("zone")
    if top_zone is not None and not isinstance(top_zone, str):
        raise CarbonImportError(FORMAT, "zone must be a string", field="zone")

    entries: list[tuple[str, dict[str, Any]]] = []
    is_forecast = False
    if "carbonIntensity" in payload:
        entries.append(("$", payload))
    else:
        key = next((k for k in LIST_KEYS if k in payload), None)
        if key is None:
            raise CarbonImportError(FORMAT, "no carbonIntensity, history, forecast or data key")
        items = payload[key]
        if not isinstance(items, list):
            raise CarbonImportError(FORMAT, f"{key} must be a list", field=key)
        if not items:
            raise CarbonImportError(FORMAT, f"{key} is empty", field=key)
        is_forecast = key == "forecast"
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise CarbonImportError(FORMAT, "expected an object", field=f"{key}[{index}]")
            entries.append((f"{key}[{index}]", item))

    drafts = [
        Draft(_record(path, item, top_zone, zone, default_basis, is_forecast), path) for path, item in entries
    ]
    return finalize(drafts, format_name=FORMAT)


def _record(
    path: str,
    item: dict[str, Any],
    top_zone: str | None,
    zone_override: str | None,
    default_basis: Basis,
    is_forecast: bool,
) -> IntensityRecord:
    entry_zone = item.get("zone", top_zone)
    if top_zone is not None and entry_zone != top_zone:
        raise CarbonImportError(
            FORMAT, f"zone {entry_zone!r} differs from the response zone {top_zone!r}", field=f"{path}.zone"
        )
    zone = zone_override or entry_zone
    if not isinstance(zone, str) or not zone:
        raise CarbonImportError(FORMAT, "missing zone", field=f"{path}.zone")

    raw_time = item.get("datetime")
    if not isinstance(raw_time, str):
        raise CarbonImportError(FORMAT, "missing or non-string datetime", field=f"{path}.datetime")
    try:
        start = parse_timestamp(raw_time, naive_tz=None)
    except ValueError as exc:
        raise CarbonImportError(FORMAT, str(exc), field=f"{path}.datetime") from None
    problem = check_period_start(start, "hour")
    if problem:
        raise CarbonImportError(FORMAT, problem, field=f"{path}.datetime")

    value = item.get("carbonIntensity")
    if value is None:
        raise CarbonImportError(
            FORMAT, "carbonIntensity is null (no value for this hour)", field=f"{path}.carbonIntensity"
        )
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise CarbonImportError(
            FORMAT, f"carbonIntensity must be a number, got {value!r}", field=f"{path}.carbonIntensity"
        )
    try:
        intensity = check_intensity(value)
    except ValueError as exc:
        raise CarbonImportError(FORMAT, str(exc), field=f"{path}.carbonIntensity") from None

    factor = item.get("emissionFactorType", default_basis)
    if factor not in BASES:
        raise CarbonImportError(
            FORMAT, f"unknown emissionFactorType {factor!r}", field=f"{path}.emissionFactorType"
        )
    estimated = item.get("isEstimated", False)
    if not isinstance(estimated, bool) and estimated is not None:
        raise CarbonImportError(FORMAT, "isEstimated must be a boolean", field=f"{path}.isEstimated")
    return IntensityRecord(
        zone=zone,
        start_utc=start,
        granularity="hour",
        intensity_g_per_kwh=intensity,
        basis=factor,
        source=SOURCE,
        is_forecast=is_forecast,
        is_estimated=bool(estimated),
    )

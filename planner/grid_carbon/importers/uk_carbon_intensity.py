"""UK Carbon Intensity API JSON (api.carbonintensity.org.uk, NESO; CC BY 4.0), national and regional.

Shapes (half-hourly, gCO₂/kWh, times ``2022-01-01T00:30Z``)::

    national   {"data": [{"from", "to", "intensity": {"forecast": 195, "actual": 193, "index": "moderate"}}]}
    /regional  {"data": [{"from", "to", "regions": [{"regionid": 1, "shortname": "North Scotland",
                 "intensity": {"forecast": 42, "index": "very low"}, "generationmix": [{"fuel", "perc"}]}]}]}
    /regional/regionid/{id}, /regional/postcode/{pc}
               {"data": [{"regionid": 1, "shortname": …, "data": [{"from", "to", "intensity", "generationmix"}]}]}
               (``data`` is sometimes an object instead of a one-element list; both are accepted)

National ``actual`` is used when present, else ``forecast`` (``is_forecast=True``). Regional series have
only forecasts. Half-hours are averaged into UTC hours.

Basis: **direct**. NESO's per-fuel factors give nuclear, wind, solar and hydro 0 g/kWh — operational
emissions, not lifecycle — so these values sit below Electricity Maps' lifecycle figures for GB.
Zones: ``GB`` for national data, ``GB-CI-<regionid>`` for the API's regions (1–17, 18–20 = England,
Scotland, Wales).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from planner.grid_carbon.importers.errors import CarbonImportError
from planner.grid_carbon.importers.series import Point, average_into_hours, finalize, mean_or_none
from planner.grid_carbon.importers.text import load_json
from planner.grid_carbon.importers.timestamps import parse_timestamp
from planner.grid_carbon.records import IntensityRecord, check_intensity

FORMAT = "UK Carbon Intensity API JSON"
SOURCE = "UK Carbon Intensity API (NESO)"
NATIONAL_ZONE = "GB"
REGION_ZONE_PREFIX = "GB-CI-"
HALF_HOUR = timedelta(minutes=30)
RENEWABLE_FUELS = frozenset({"biomass", "hydro", "solar", "wind"})
CARBON_FREE_FUELS = RENEWABLE_FUELS | {"nuclear"}


def region_zone(region_id: int) -> str:
    """Zone id used for a UK Carbon Intensity API region: ``GB-CI-<regionid>``."""
    return f"{REGION_ZONE_PREFIX}{region_id}"


def looks_like_uk_json(payload: Any) -> bool:
    """True for the national or regional response shapes (used by format detection)."""
    if not isinstance(payload, dict):
        return False
    data = payload.get("data")
    first = data[0] if isinstance(data, list) and data else data
    if not isinstance(first, dict):
        return False
    return ("from" in first and ("intensity" in first or "regions" in first)) or "regionid" in first


def parse_uk_carbon_intensity_json(
    data: bytes | str | dict[str, Any],
    *,
    zone: str | None = None,
) -> list[IntensityRecord]:
    """Parse a national or regional response into hourly records (direct basis), or raise."""
    payload = load_json(data, FORMAT)
    if not isinstance(payload, dict) or "data" not in payload:
        raise CarbonImportError(FORMAT, "expected an object with a 'data' key")
    blocks = _as_list(payload["data"], "data")
    if not blocks:
        raise CarbonImportError(FORMAT, "data is empty", field="data")
    points: list[Point] = []
    for index, block in enumerate(blocks):
        path = f"data[{index}]"
        if not isinstance(block, dict):
            raise CarbonImportError(FORMAT, "expected an object", field=path)
        if "regions" in block:
            start = _period(block, path)
            for r_index, region in enumerate(_as_list(block["regions"], f"{path}.regions")):
                r_path = f"{path}.regions[{r_index}]"
                points.append(
                    _point(
                        region, start, zone or region_zone(_region_id(region, r_path)), r_path, regional=True
                    )
                )
        elif "regionid" in block:
            region_name = zone or region_zone(_region_id(block, path))
            for s_index, slot in enumerate(_as_list(block.get("data"), f"{path}.data")):
                s_path = f"{path}.data[{s_index}]"
                if not isinstance(slot, dict):
                    raise CarbonImportError(FORMAT, "expected an object", field=s_path)
                points.append(_point(slot, _period(slot, s_path), region_name, s_path, regional=True))
        elif "intensity" in block:
            points.append(_point(block, _period(block, path), zone or NATIONAL_ZONE, path, regional=False))
        else:
            raise CarbonImportError(FORMAT, "no intensity, regions or regionid in this entry", field=path)
    drafts = average_into_hours(points, period_s=1800, format_name=FORMAT, make_record=_hour_record)
    return finalize(drafts, format_name=FORMAT)


def _as_list(value: Any, path: str) -> list[Any]:
    if isinstance(value, dict):
        return [value]  # the API's list-vs-object quirk on some regional endpoints
    if not isinstance(value, list):
        raise CarbonImportError(FORMAT, "expected a list", field=path)
    return value


def _region_id(item: Any, path: str) -> int:
    region_id = item.get("regionid") if isinstance(item, dict) else None
    if not isinstance(region_id, int) or isinstance(region_id, bool):
        raise CarbonImportError(FORMAT, "missing integer regionid", field=f"{path}.regionid")
    return region_id


def _period(item: dict[str, Any], path: str) -> datetime:
    try:
        start = parse_timestamp(str(item["from"]), naive_tz=None)
        end = parse_timestamp(str(item["to"]), naive_tz=None)
    except KeyError as exc:
        raise CarbonImportError(FORMAT, f"missing {exc.args[0]!r}", field=path) from None
    except ValueError as exc:
        raise CarbonImportError(FORMAT, str(exc), field=f"{path}.from") from None
    if end - start != HALF_HOUR:
        raise CarbonImportError(FORMAT, f"period {item['from']}–{item['to']} is not half an hour", field=path)
    return start


def _point(item: Any, start: datetime, zone: str, path: str, *, regional: bool) -> Point:
    if not isinstance(item, dict) or not isinstance(item.get("intensity"), dict):
        raise CarbonImportError(FORMAT, "missing intensity object", field=f"{path}.intensity")
    intensity = item["intensity"]
    actual = None if regional else intensity.get("actual")
    forecast = intensity.get("forecast")
    chosen, key = (actual, "actual") if actual is not None else (forecast, "forecast")
    if chosen is None:
        raise CarbonImportError(FORMAT, "neither actual nor forecast intensity", field=f"{path}.intensity")
    if not isinstance(chosen, int | float) or isinstance(chosen, bool):
        raise CarbonImportError(FORMAT, f"not a number: {chosen!r}", field=f"{path}.intensity.{key}")
    try:
        value = check_intensity(chosen)
    except ValueError as exc:
        raise CarbonImportError(FORMAT, str(exc), field=f"{path}.intensity.{key}") from None
    renewable, carbon_free = _shares(item.get("generationmix"), path)
    return Point(zone, start, value, path, None, renewable, carbon_free, key == "forecast", False)


def _shares(mix: Any, path: str) -> tuple[float | None, float | None]:
    if mix is None:
        return None, None
    if not isinstance(mix, list):
        raise CarbonImportError(FORMAT, "generationmix must be a list", field=f"{path}.generationmix")
    renewable = carbon_free = 0.0
    for index, entry in enumerate(mix):
        perc = entry.get("perc") if isinstance(entry, dict) else None
        if not isinstance(perc, int | float) or not 0 <= perc <= 100:
            raise CarbonImportError(FORMAT, f"bad perc {perc!r}", field=f"{path}.generationmix[{index}]")
        fuel = str(entry.get("fuel", "")).lower()
        renewable += perc if fuel in RENEWABLE_FUELS else 0.0
        carbon_free += perc if fuel in CARBON_FREE_FUELS else 0.0
    return min(renewable, 100.0), min(carbon_free, 100.0)


def _hour_record(zone: str, hour: datetime, mean: float, members: Sequence[Point]) -> IntensityRecord:
    return IntensityRecord(
        zone=zone,
        start_utc=hour,
        granularity="hour",
        intensity_g_per_kwh=mean,
        basis="direct",
        source=SOURCE,
        renewable_pct=mean_or_none([p.renewable_pct for p in members]),
        cfe_pct=mean_or_none([p.cfe_pct for p in members]),
        is_forecast=any(p.is_forecast for p in members),
    )

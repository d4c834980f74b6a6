"""WattTime API v3 JSON: ``/v3/forecast`` and ``/v3/historical`` responses.

Shape::

    {"data": [{"point_time": "2024-02-27T16:40:00+00:00", "value": 208.6}, …],
     "meta": {"region": "CAISO_NORTH", "signal_type": "co2_moer", "units": "lbs_co2_per_mwh",
              "data_point_period_seconds": 300, "generated_at": "…" (forecasts only), "model": {…}}}

Values are **lbs CO₂ per MWh**, converted here to g/kWh (× 0.45359237). Points are 5-minute and are
averaged into UTC hours.

The signal matters and is recorded honestly:

* ``co2_moer`` — *marginal* operating emissions rate: what one more kWh would emit now. The right
  signal for choosing *when* to run; records get ``signal="marginal"`` and the resolver will not use
  them to report emissions unless asked to.
* ``co2_aoer`` — *average* operating emissions rate (historical only): usable for accounting.

Both count stack emissions of power plants, so the basis is ``direct``. ``/v3/signal-index`` (a 0–100
percentile, not an intensity) and ``health_damage`` ($) are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from planner.grid_carbon.importers.errors import CarbonImportError
from planner.grid_carbon.importers.series import Point, average_into_hours, finalize
from planner.grid_carbon.importers.text import load_json
from planner.grid_carbon.importers.timestamps import parse_timestamp
from planner.grid_carbon.records import IntensityRecord, Signal, check_intensity
from planner.units import lbs_per_mwh_to_g_per_kwh

FORMAT = "WattTime API JSON"
SOURCE = "WattTime API"
UNITS_LBS_PER_MWH = "lbs_co2_per_mwh"
SIGNALS: dict[str, Signal] = {"co2_moer": "marginal", "co2_aoer": "average"}


def looks_like_watttime_json(payload: Any) -> bool:
    """True for a WattTime v3 data response (used by format detection)."""
    if not isinstance(payload, dict):
        return False
    meta = payload.get("meta")
    if isinstance(meta, dict) and "signal_type" in meta:
        return True
    data = payload.get("data")
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "point_time" in data[0]


def parse_watttime_json(
    data: bytes | str | dict[str, Any],
    *,
    zone: str | None = None,
) -> list[IntensityRecord]:
    """Parse a ``/v3/forecast`` or ``/v3/historical`` body into hourly g/kWh records, or raise.

    ``zone`` files the data under another zone id (WattTime regions such as ``CAISO_NORTH`` are not
    Electricity Maps zones; map them to the site's zone, e.g. ``US-CAL-CISO``).
    """
    payload = load_json(data, FORMAT)
    if not isinstance(payload, dict):
        raise CarbonImportError(FORMAT, "expected a JSON object at the top level")
    meta = payload.get("meta")
    if not isinstance(meta, dict):
        raise CarbonImportError(FORMAT, "missing meta object", field="meta")
    units = meta.get("units")
    if units != UNITS_LBS_PER_MWH:
        raise CarbonImportError(
            FORMAT,
            f"unsupported units {units!r}; expected {UNITS_LBS_PER_MWH!r} "
            "(signal-index percentiles and health damages are not intensities)",
            field="meta.units",
        )
    signal_type = meta.get("signal_type")
    signal = SIGNALS.get(str(signal_type))
    if signal is None:
        raise CarbonImportError(
            FORMAT,
            f"unsupported signal_type {signal_type!r}; use co2_moer or co2_aoer",
            field="meta.signal_type",
        )
    region = zone or meta.get("region")
    if not isinstance(region, str) or not region:
        raise CarbonImportError(FORMAT, "missing region", field="meta.region")
    is_forecast = "generated_at" in meta
    items = payload.get("data")
    if not isinstance(items, list) or not items:
        raise CarbonImportError(FORMAT, "data must be a non-empty list", field="data")
    if isinstance(items[0], dict) and "forecast" in items[0]:
        raise CarbonImportError(
            FORMAT,
            "this is a /v3/forecast/historical response (many forecasts); import one forecast at a time",
            field="data[0]",
        )
    period_s = meta.get("data_point_period_seconds", 300)
    if not isinstance(period_s, int) or isinstance(period_s, bool):
        raise CarbonImportError(
            FORMAT, f"bad data_point_period_seconds {period_s!r}", field="meta.data_point_period_seconds"
        )

    points = [_point(item, region, f"data[{index}]", is_forecast) for index, item in enumerate(items)]

    def make(zone_id: str, hour: datetime, mean: float, members: Sequence[Point]) -> IntensityRecord:
        return IntensityRecord(
            zone=zone_id,
            start_utc=hour,
            granularity="hour",
            intensity_g_per_kwh=mean,
            basis="direct",
            source=f"{SOURCE} {signal_type}",
            signal=signal,
            is_forecast=is_forecast,
        )

    drafts = average_into_hours(points, period_s=period_s, format_name=FORMAT, make_record=make)
    return finalize(drafts, format_name=FORMAT)


def _point(item: Any, region: str, path: str, is_forecast: bool) -> Point:
    if not isinstance(item, dict):
        raise CarbonImportError(FORMAT, "expected an object", field=path)
    raw_time = item.get("point_time")
    if not isinstance(raw_time, str):
        raise CarbonImportError(FORMAT, "missing point_time", field=f"{path}.point_time")
    try:
        start = parse_timestamp(raw_time, naive_tz=None)
    except ValueError as exc:
        raise CarbonImportError(FORMAT, str(exc), field=f"{path}.point_time") from None
    value = item.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise CarbonImportError(FORMAT, f"value must be a number, got {value!r}", field=f"{path}.value")
    try:
        lbs_per_mwh = check_intensity(value, what="value")
    except ValueError as exc:
        raise CarbonImportError(FORMAT, str(exc), field=f"{path}.value") from None
    return Point(
        region, start, lbs_per_mwh_to_g_per_kwh(lbs_per_mwh), path, None, None, None, is_forecast, False
    )

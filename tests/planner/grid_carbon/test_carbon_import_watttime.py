"""WattTime v3 JSON: lbs/MWh → g/kWh, 5-minute points → hours, marginal vs average recorded honestly."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from planner.grid_carbon.importers import CarbonImportError, parse_watttime_json

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIXTURES / name).read_text()))


def test_moer_forecast_is_converted_to_g_per_kwh_and_marked_marginal() -> None:
    records = parse_watttime_json((FIXTURES / "watttime_forecast_CAISO_NORTH.json").read_bytes())
    assert [r.start_utc for r in records] == [
        datetime(2024, 2, 27, 16, tzinfo=UTC),
        datetime(2024, 2, 27, 17, tzinfo=UTC),
    ]
    # hour means 855.5 and 801.5 lbs/MWh; × 0.45359237 = 388.0482725 and 363.5542845 g/kWh
    assert records[0].intensity_g_per_kwh == pytest.approx(388.0482725)
    assert records[1].intensity_g_per_kwh == pytest.approx(363.5542845)
    assert {r.signal for r in records} == {"marginal"}
    assert {r.basis for r in records} == {"direct"}
    assert all(r.is_forecast for r in records)
    assert records[0].zone == "CAISO_NORTH"
    assert "co2_moer" in records[0].source


def test_aoer_history_is_an_average_signal_and_can_be_filed_under_another_zone() -> None:
    records = parse_watttime_json(load("watttime_historical_aoer_CAISO_NORTH.json"), zone="US-CAL-CISO")
    (record,) = records
    # values 520, 522, …, 542 → mean 531 lbs/MWh = 240.85754847 g/kWh
    assert record.intensity_g_per_kwh == pytest.approx(240.85754847)
    assert (record.signal, record.is_forecast, record.zone) == ("average", False, "US-CAL-CISO")


def test_signal_index_percentiles_are_refused_as_bad_units() -> None:
    body = {
        "data": [{"point_time": "2024-02-27T16:40:00+00:00", "value": 63.0}],
        "meta": {"region": "CAISO_NORTH", "signal_type": "co2_moer", "units": "percentile"},
    }
    with pytest.raises(CarbonImportError, match="unsupported units 'percentile'") as info:
        parse_watttime_json(body)
    assert info.value.field == "meta.units"


def test_health_damage_is_not_an_intensity() -> None:
    body = load("watttime_forecast_CAISO_NORTH.json")
    body["meta"]["signal_type"] = "health_damage"
    with pytest.raises(CarbonImportError, match="unsupported signal_type 'health_damage'"):
        parse_watttime_json(body)


def test_a_missing_five_minute_point_is_a_gap_error() -> None:
    body = load("watttime_forecast_CAISO_NORTH.json")
    del body["data"][7]
    with pytest.raises(CarbonImportError, match=r"gap.*1 point\(s\) of 300 s missing"):
        parse_watttime_json(body)


def test_conflicting_duplicate_points_are_an_error() -> None:
    body = load("watttime_forecast_CAISO_NORTH.json")
    body["data"].append({"point_time": body["data"][0]["point_time"], "value": 1.0})
    with pytest.raises(CarbonImportError, match="duplicate point"):
        parse_watttime_json(body)


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1.0, "must not be negative"), (None, "must be a number"), ("880", "must be a number")],
)
def test_bad_values_are_rejected_with_their_path(value: object, message: str) -> None:
    body = load("watttime_forecast_CAISO_NORTH.json")
    body["data"][4]["value"] = value
    with pytest.raises(CarbonImportError, match=message) as info:
        parse_watttime_json(body)
    assert info.value.field == "data[4].value"


def test_forecast_history_bundles_and_bodies_without_meta_are_rejected() -> None:
    bundle = {
        "data": [{"generated_at": "2024-02-27T16:00:00+00:00", "forecast": []}],
        "meta": load("watttime_forecast_CAISO_NORTH.json")["meta"],
    }
    with pytest.raises(CarbonImportError, match="forecast/historical"):
        parse_watttime_json(bundle)
    with pytest.raises(CarbonImportError, match="missing meta"):
        parse_watttime_json({"data": []})

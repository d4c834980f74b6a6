"""Electricity Maps API v3 JSON: a real captured history response, latest and forecast — and broken bodies."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from planner.grid_carbon.importers import CarbonImportError, parse_electricitymaps_json

REAL_HISTORY = (
    Path(__file__).parent / "fixtures" / "electricitymaps_v3_carbon_intensity_history_US-MIDW-MISO.json"
).read_bytes()


def history() -> dict[str, Any]:
    return copy.deepcopy(json.loads(REAL_HISTORY))


def test_real_history_response_gives_24_hourly_lifecycle_records() -> None:
    records = parse_electricitymaps_json(REAL_HISTORY)
    assert len(records) == 24
    assert records[0].zone == "US-MIDW-MISO"
    assert records[0].start_utc == datetime(2024, 11, 30, 6, tzinfo=UTC)
    assert records[0].intensity_g_per_kwh == 501.0
    assert records[0].is_estimated is True and records[1].is_estimated is False
    assert records[-1].start_utc == datetime(2024, 12, 1, 5, tzinfo=UTC)
    assert {r.basis for r in records} == {"lifecycle"}
    assert {r.granularity for r in records} == {"hour"}
    assert not any(r.is_forecast for r in records)


def test_latest_response_gives_one_record_with_its_factor_type() -> None:
    latest = {
        "zone": "DE",
        "carbonIntensity": 302,
        "datetime": "2025-01-15T13:00:00.000Z",
        "updatedAt": "2025-01-15T13:41:07.355Z",
        "createdAt": "2025-01-12T13:44:26.614Z",
        "emissionFactorType": "direct",
        "isEstimated": True,
        "estimationMethod": "TIME_SLICER_AVERAGE",
    }
    (record,) = parse_electricitymaps_json(json.dumps(latest))
    assert (record.zone, record.intensity_g_per_kwh, record.basis) == ("DE", 302.0, "direct")


def test_forecast_response_is_marked_as_forecast() -> None:
    forecast = {
        "zone": "DE",
        "forecast": [
            {"carbonIntensity": 288, "datetime": "2025-01-15T14:00:00.000Z"},
            {"carbonIntensity": 275, "datetime": "2025-01-15T15:00:00.000Z"},
        ],
        "updatedAt": "2025-01-15T13:41:07.355Z",
    }
    records = parse_electricitymaps_json(forecast)
    assert [r.intensity_g_per_kwh for r in records] == [288.0, 275.0]
    assert all(r.is_forecast for r in records)


def test_a_null_intensity_is_an_error_naming_the_entry() -> None:
    body = history()
    body["history"][5]["carbonIntensity"] = None
    with pytest.raises(CarbonImportError, match="null") as info:
        parse_electricitymaps_json(body)
    assert info.value.field == "history[5].carbonIntensity"


def test_a_missing_hour_in_history_is_a_gap_error() -> None:
    body = history()
    del body["history"][10]
    with pytest.raises(CarbonImportError, match=r"gap.*US-MIDW-MISO: nothing from 2024-11-30T16:00Z"):
        parse_electricitymaps_json(body)


def test_duplicates_conflicting_are_errors_identical_are_deduplicated() -> None:
    body = history()
    body["history"].append(dict(body["history"][3]))
    assert len(parse_electricitymaps_json(body)) == 24
    body["history"][-1]["carbonIntensity"] = 999
    with pytest.raises(
        CarbonImportError, match=r"duplicate hour.*history\[3\]: 419 g/kWh, history\[24\]: 999"
    ):
        parse_electricitymaps_json(body)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("carbonIntensity", -5, "must not be negative"),
        ("carbonIntensity", "501", "must be a number"),
        ("emissionFactorType", "marginal", "unknown emissionFactorType"),
        ("datetime", "30/11/2024 06:00", "unparsable timestamp"),
        ("datetime", "2024-11-30T06:30:00.000Z", "not on an hour boundary"),
        ("datetime", "2024-11-30T06:00:00", "no UTC offset"),
        ("zone", "FR", "differs from the response zone"),
    ],
)
def test_bad_entries_are_rejected_with_their_json_path(field: str, value: object, message: str) -> None:
    body = history()
    body["history"][0][field] = value
    with pytest.raises(CarbonImportError, match=message) as info:
        parse_electricitymaps_json(body)
    assert info.value.field == f"history[0].{field}"


def test_malformed_bodies_are_rejected() -> None:
    with pytest.raises(CarbonImportError, match="invalid JSON"):
        parse_electricitymaps_json(b'{"zone": "DE", "history": [')
    with pytest.raises(CarbonImportError, match="NaN"):
        parse_electricitymaps_json(
            b'{"zone": "DE", "carbonIntensity": NaN, "datetime": "2025-01-15T13:00:00Z"}'
        )
    with pytest.raises(CarbonImportError, match="no carbonIntensity, history, forecast or data key"):
        parse_electricitymaps_json({"zone": "DE"})
    with pytest.raises(CarbonImportError, match="history is empty"):
        parse_electricitymaps_json({"zone": "DE", "history": []})

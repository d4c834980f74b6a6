"""UK Carbon Intensity API JSON, national and regional: half-hours averaged into hours — and broken bodies."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from planner.grid_carbon.importers import CarbonImportError, parse_uk_carbon_intensity_json

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIXTURES / name).read_text()))


def test_national_half_hours_become_hourly_direct_records_using_actuals() -> None:
    records = parse_uk_carbon_intensity_json((FIXTURES / "uk_national_intensity.json").read_bytes())
    assert [r.start_utc for r in records] == [
        datetime(2024, 5, 14, 22, tzinfo=UTC),
        datetime(2024, 5, 14, 23, tzinfo=UTC),
        datetime(2024, 5, 15, 0, tzinfo=UTC),
    ]
    # actuals: (137 + 129) / 2 = 133; (121 + 116) / 2 = 118.5; (110 actual + 109 forecast) / 2 = 109.5
    assert [r.intensity_g_per_kwh for r in records] == [133.0, 118.5, 109.5]
    assert [r.is_forecast for r in records] == [False, False, True]
    assert {r.zone for r in records} == {"GB"}
    assert {r.basis for r in records} == {"direct"}


def test_regional_responses_give_one_zone_per_region_with_renewable_shares() -> None:
    records = parse_uk_carbon_intensity_json(load("uk_regional_intensity.json"))
    by_zone = {r.zone: r for r in records}
    assert set(by_zone) == {"GB-CI-1", "GB-CI-13"}
    assert by_zone["GB-CI-1"].intensity_g_per_kwh == 11.0  # (12 + 10) / 2
    assert by_zone["GB-CI-13"].intensity_g_per_kwh == 168.5  # (171 + 166) / 2
    # North Scotland: wind 78.4 + hydro 15.2 + biomass 0.3 + solar 0 = 93.9 %
    assert by_zone["GB-CI-1"].renewable_pct == pytest.approx(93.9)
    # London: renewables 28.5 % (wind 22 + biomass 6.5), carbon-free adds nuclear 14 → 42.5 %
    assert by_zone["GB-CI-13"].renewable_pct == pytest.approx(28.5)
    assert by_zone["GB-CI-13"].cfe_pct == pytest.approx(42.5)
    assert all(r.is_forecast for r in records)  # regional values are forecasts only


def test_region_id_response_with_nested_data_and_the_object_quirk() -> None:
    body = load("uk_regionid_13.json")
    as_list = parse_uk_carbon_intensity_json(body)
    body["data"] = body["data"][0]  # some endpoints return an object instead of a one-element list
    assert parse_uk_carbon_intensity_json(body) == as_list
    assert [r.intensity_g_per_kwh for r in as_list] == [153.5, 141.0]  # (158+149)/2, (143+139)/2


def test_a_missing_half_hour_is_a_gap_error() -> None:
    body = load("uk_national_intensity.json")
    del body["data"][2]
    with pytest.raises(CarbonImportError, match=r"gap.*GB has nothing between 2024-05-14T22:30:00\+00:00"):
        parse_uk_carbon_intensity_json(body)


def test_conflicting_duplicate_half_hours_are_an_error() -> None:
    body = load("uk_national_intensity.json")
    clash = copy.deepcopy(body["data"][1])
    clash["intensity"]["actual"] = 300
    body["data"].append(clash)
    with pytest.raises(CarbonImportError, match=r"duplicate point for GB .*data\[1\]: 129, data\[6\]: 300"):
        parse_uk_carbon_intensity_json(body)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["data"][0].update({"to": "2024-05-14T23:00Z"}), "is not half an hour"),
        (
            lambda d: d["data"][0]["intensity"].update({"actual": None, "forecast": None}),
            "neither actual nor forecast",
        ),
        (lambda d: d["data"][0]["intensity"].update({"actual": -3}), "must not be negative"),
        (lambda d: d["data"][0].update({"from": "yesterday"}), "unparsable timestamp"),
        (lambda d: d["data"][0].pop("intensity"), "no intensity, regions or regionid"),
    ],
)
def test_broken_entries_are_rejected(mutate: Any, message: str) -> None:
    body = load("uk_national_intensity.json")
    mutate(body)
    with pytest.raises(CarbonImportError, match=message):
        parse_uk_carbon_intensity_json(body)


def test_a_body_without_data_is_rejected() -> None:
    with pytest.raises(CarbonImportError, match="'data' key"):
        parse_uk_carbon_intensity_json({"error": {"code": "400 Bad Request"}})

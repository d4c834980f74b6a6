"""Electricity Maps CSV exports, both header generations, every granularity — and broken files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from planner.grid_carbon.importers import CarbonImportError, parse_electricitymaps_csv

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


OLD_HOURLY = fixture_bytes("DE_2022_hourly.csv").decode()
NEW_HOURLY = fixture_bytes("SE-SE3_2024_hourly.csv").decode()
NEW_HEADER = NEW_HOURLY.splitlines()[0]


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_older_header_generation_hourly_file_is_imported() -> None:
    records = parse_electricitymaps_csv(OLD_HOURLY, filename="DE_2022_hourly.csv")
    assert len(records) == 6
    first = records[0]
    assert (first.zone, first.start_utc, first.granularity) == (
        "DE",
        datetime(2022, 1, 10, tzinfo=UTC),
        "hour",
    )
    assert first.intensity_g_per_kwh == 409.87  # the (LCA) column
    assert (first.basis, first.renewable_pct, first.cfe_pct) == ("lifecycle", 38.55, 46.12)
    assert first.is_forecast is False
    assert records[4].is_estimated is True
    assert records[-1].start_utc == datetime(2022, 1, 10, 5, tzinfo=UTC)


def test_newer_header_generation_hourly_file_is_imported_with_direct_basis_on_request() -> None:
    records = parse_electricitymaps_csv(NEW_HOURLY, filename="SE-SE3_2024_hourly.csv", basis="direct")
    assert [r.intensity_g_per_kwh for r in records] == [4.12, 3.98, 3.77, 4.05]
    assert {r.basis for r in records} == {"direct"}
    assert records[0].cfe_pct == 99.1 and records[0].renewable_pct == 62.4


def test_daily_monthly_and_yearly_exports_keep_their_granularity() -> None:
    daily = parse_electricitymaps_csv(fixture_bytes("FR_2023_daily.csv"), filename="FR_2023_daily.csv")
    monthly = parse_electricitymaps_csv(fixture_bytes("PL_2022_monthly.csv"), filename="PL_2022_monthly.csv")
    yearly = parse_electricitymaps_csv(
        fixture_bytes("NO-NO1_2024_yearly.csv"), filename="NO-NO1_2024_yearly.csv"
    )
    assert [r.granularity for r in daily] == ["day"] * 3
    assert [r.start_utc.month for r in monthly] == [1, 2, 3] and monthly[0].granularity == "month"
    assert (yearly[0].granularity, yearly[0].intensity_g_per_kwh) == ("year", 30.2)


def test_granularity_is_inferred_from_row_spacing_without_a_file_name() -> None:
    assert {r.granularity for r in parse_electricitymaps_csv(fixture_bytes("FR_2023_daily.csv"))} == {"day"}


def test_ascii_and_lower_case_header_variants_are_accepted() -> None:
    ascii_text = OLD_HOURLY.replace("gCO₂eq", "gCO2eq").replace("Zone Id", "zone id")
    assert len(parse_electricitymaps_csv(ascii_text)) == 6


def test_five_minute_exports_are_averaged_into_hours() -> None:
    rows = [NEW_HEADER] + [
        f"2024-03-05 10:{m:02d}:00,Sweden,South Central Sweden,SE-SE3,4.0,{20 + m // 5},99.0,60.0,svk.se,false,"
        for m in range(0, 60, 5)
    ]
    records = parse_electricitymaps_csv("\n".join(rows), filename="SE-SE3_2024_5_minute.csv")
    assert len(records) == 1
    # values 20..31 → mean 25.5
    assert records[0].intensity_g_per_kwh == pytest.approx(25.5)
    assert records[0].granularity == "hour"


def test_zone_override_files_rows_under_the_sites_zone() -> None:
    records = parse_electricitymaps_csv(NEW_HOURLY, zone="SE-SE3-SITE")
    assert {r.zone for r in records} == {"SE-SE3-SITE"}


def test_identical_duplicate_rows_are_kept_once() -> None:
    rows = lines(NEW_HOURLY)
    records = parse_electricitymaps_csv("\n".join([*rows, rows[2]]))
    assert len(records) == 4


def test_conflicting_duplicate_rows_are_an_error_naming_both_lines() -> None:
    rows = lines(NEW_HOURLY)
    rows.append(rows[2].replace("24.51", "99.0"))
    with pytest.raises(
        CarbonImportError, match=r"duplicate hour for SE-SE3 at 2024-03-05T11:00Z.*line 3.*line 6"
    ):
        parse_electricitymaps_csv("\n".join(rows))


def test_a_gap_in_an_hourly_series_is_reported_not_filled() -> None:
    rows = lines(OLD_HOURLY)
    del rows[3]  # 02:00
    with pytest.raises(
        CarbonImportError, match=r"gap.*DE: nothing from 2022-01-10T02:00Z.*1 hour\(s\) missing"
    ) as info:
        parse_electricitymaps_csv("\n".join(rows), filename="DE_2022_hourly.csv")
    assert info.value.line == 4


def test_a_wrong_header_is_rejected() -> None:
    codecarbon_header = (
        "timestamp,project_name,run_id,duration,emissions,energy_consumed\n2024-01-01T00:00:00,p,r,1,1,1"
    )
    with pytest.raises(CarbonImportError, match="missing column"):
        parse_electricitymaps_csv(codecarbon_header)
    no_lca = OLD_HOURLY.replace("Carbon Intensity gCO₂eq/kWh (LCA)", "Something else")
    with pytest.raises(
        CarbonImportError, match=r"no 'Carbon intensity gCO₂eq/kWh \(LCA / Life cycle\)' column"
    ):
        parse_electricitymaps_csv(no_lca)


def test_bad_units_in_the_header_are_rejected() -> None:
    kg_per_mwh = OLD_HOURLY.replace("Carbon Intensity gCO₂eq/kWh (LCA)", "Carbon Intensity kgCO₂eq/MWh (LCA)")
    with pytest.raises(CarbonImportError, match="unexpected unit") as info:
        parse_electricitymaps_csv(kg_per_mwh)
    assert info.value.line == 1
    local_time = OLD_HOURLY.replace("Datetime (UTC)", "Datetime (CET)")
    with pytest.raises(CarbonImportError, match="must be UTC"):
        parse_electricitymaps_csv(local_time)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("NaN", "not a finite number"),
        ("-12.5", "negative value"),
        ("abc", "not a number"),
        ("", "missing value"),
    ],
)
def test_bad_intensity_values_are_rejected_with_line_and_field(bad: str, message: str) -> None:
    rows = lines(NEW_HOURLY)
    rows[2] = rows[2].replace(",24.51,", f",{bad},")
    with pytest.raises(CarbonImportError, match=message) as info:
        parse_electricitymaps_csv("\n".join(rows))
    assert info.value.line == 3
    assert info.value.field == "Carbon intensity gCO₂eq/kWh (Life cycle)"


def test_unparsable_timestamps_and_percentages_above_100_are_rejected() -> None:
    rows = lines(NEW_HOURLY)
    rows[1] = rows[1].replace("2024-03-05 10:00:00", "2024-13-05 10:00:00")
    with pytest.raises(CarbonImportError, match="unparsable timestamp") as info:
        parse_electricitymaps_csv("\n".join(rows))
    assert (info.value.line, info.value.field) == (2, "Datetime (UTC)")
    rows = lines(NEW_HOURLY)
    rows[1] = rows[1].replace(",99.1,62.4,", ",99.1,162.4,")
    with pytest.raises(CarbonImportError, match="percentage above 100"):
        parse_electricitymaps_csv("\n".join(rows))


def test_timestamps_that_do_not_start_their_period_are_rejected() -> None:
    text = fixture_bytes("FR_2023_daily.csv").decode().replace("2023-06-02 00:00:00", "2023-06-02 06:00:00")
    with pytest.raises(CarbonImportError, match="does not start a UTC day"):
        parse_electricitymaps_csv(text, filename="FR_2023_daily.csv")


def test_a_single_row_needs_a_granularity_from_name_or_argument() -> None:
    one = fixture_bytes("NO-NO1_2024_yearly.csv")
    with pytest.raises(CarbonImportError, match="cannot infer granularity"):
        parse_electricitymaps_csv(one)
    assert parse_electricitymaps_csv(one, granularity="year")[0].granularity == "year"


def test_short_rows_empty_files_and_non_utf8_bytes_are_rejected() -> None:
    with pytest.raises(CarbonImportError, match="expected 11 columns, found 3"):
        parse_electricitymaps_csv(NEW_HOURLY + "\n2024-03-05 14:00:00,Sweden,x\n")
    with pytest.raises(CarbonImportError, match="empty"):
        parse_electricitymaps_csv(b"")
    with pytest.raises(CarbonImportError, match="not UTF-8"):
        parse_electricitymaps_csv(b"\xff\xfe\x00D\x00a")


def test_nothing_is_returned_when_any_row_is_bad() -> None:
    rows = lines(OLD_HOURLY)
    rows[-1] = rows[-1].replace("447.16", "-1")
    with pytest.raises(CarbonImportError):
        parse_electricitymaps_csv("\n".join(rows))

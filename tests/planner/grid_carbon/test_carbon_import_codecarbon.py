"""CodeCarbon emissions.csv: runs to bring over, cumulative flushes folded — and broken files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from planner.grid_carbon.importers import CarbonImportError, parse_codecarbon_csv

TEXT = (Path(__file__).parent / "fixtures" / "codecarbon_emissions.csv").read_text()
LINES = TEXT.splitlines()


def test_runs_are_imported_with_units_in_their_names() -> None:
    runs = parse_codecarbon_csv(TEXT)
    assert len(runs) == 2
    gpu_run, cloud_run = runs
    assert gpu_run.run_id == "7f3c2a10-5b8e-4c1d-9a42-0e6f1d2b3c4d"
    assert (gpu_run.duration_s, gpu_run.energy_kwh, gpu_run.emissions_kg) == (4665.731, 2.00393, 0.23977)
    assert gpu_run.gpu_energy_kwh == 1.819764 and gpu_run.gpu_count == 4
    assert (gpu_run.country_iso3, gpu_run.region, gpu_run.where) == ("DEU", "hesse", "DEU")
    assert cloud_run.where == "gcp:europe-west1" and cloud_run.on_cloud is True


def test_cumulative_flush_rows_of_one_run_are_folded_into_the_last_not_summed() -> None:
    gpu_run = parse_codecarbon_csv(TEXT)[0]
    assert gpu_run.rows == 3
    assert gpu_run.line == 4
    assert gpu_run.emissions_kg == 0.23977  # the last row, not 0.09312 + 0.18519 + 0.23977


def test_naive_local_timestamps_are_read_in_the_given_timezone() -> None:
    in_utc = parse_codecarbon_csv(TEXT)[0]
    in_berlin = parse_codecarbon_csv(TEXT, timezone="Europe/Berlin")[0]
    assert in_utc.end_utc == datetime(2025, 3, 4, 10, 2, 47, tzinfo=UTC)
    assert in_berlin.end_utc == datetime(2025, 3, 4, 9, 2, 47, tzinfo=UTC)  # CET = UTC+1 in March
    assert in_berlin.start_utc == datetime(2025, 3, 4, 7, 45, 1, 269000, tzinfo=UTC)


def test_identical_repeated_rows_are_kept_once() -> None:
    assert len(parse_codecarbon_csv("\n".join([*LINES, LINES[-1]]))) == 2


def test_different_rows_for_the_same_run_and_time_are_an_error() -> None:
    clash = LINES[-1].replace(",0.00794,", ",0.5,")
    with pytest.raises(CarbonImportError, match="appears on lines 5 and 6 with different values"):
        parse_codecarbon_csv("\n".join([*LINES, clash]))


def test_cumulative_rows_that_go_down_are_an_error() -> None:
    rows = list(LINES)
    rows[2] = rows[2].replace(",1.54685,", ",0.5,")
    with pytest.raises(CarbonImportError, match="energy decreases from line 2 to line 3"):
        parse_codecarbon_csv("\n".join(rows))


def test_a_wrong_header_is_rejected() -> None:
    em_csv = "Datetime (UTC),Zone id,Carbon intensity gCO₂eq/kWh (Life cycle)\n2024-01-01 00:00:00,DE,300"
    with pytest.raises(CarbonImportError, match="missing column"):
        parse_codecarbon_csv(em_csv)


@pytest.mark.parametrize(
    ("old", "new", "message", "field"),
    [
        (",0.00794,", ",-0.00794,", "negative value", "emissions"),
        (",932.07,", ",nan,", "not a finite number", "duration"),
        (",0.087737,", ",,", "missing value", "energy_consumed"),
        ("2025-03-05T14:30:11", "05/03/2025 14:30", "unparsable timestamp", "timestamp"),
        (",Y,1.0,", ",maybe,1.0,", "not a boolean", "on_cloud"),
    ],
)
def test_bad_values_are_rejected_with_line_and_field(old: str, new: str, message: str, field: str) -> None:
    rows = list(LINES)
    rows[4] = rows[4].replace(old, new)
    with pytest.raises(CarbonImportError, match=message) as info:
        parse_codecarbon_csv("\n".join(rows))
    assert (info.value.line, info.value.field) == (5, field)


def test_an_unknown_timezone_is_rejected() -> None:
    with pytest.raises(CarbonImportError, match="unknown timezone"):
        parse_codecarbon_csv(TEXT, timezone="Mars/Olympus")

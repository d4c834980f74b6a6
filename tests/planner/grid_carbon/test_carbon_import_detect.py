"""detect_format picks the parser from the content; unknown files get a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.grid_carbon.importers import (
    CarbonImportError,
    ImportFormat,
    detect_format,
    import_intensity_file,
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("DE_2022_hourly.csv", ImportFormat.ELECTRICITYMAPS_CSV),
        ("SE-SE3_2024_hourly.csv", ImportFormat.ELECTRICITYMAPS_CSV),
        ("electricitymaps_v3_carbon_intensity_history_US-MIDW-MISO.json", ImportFormat.ELECTRICITYMAPS_JSON),
        ("uk_national_intensity.json", ImportFormat.UK_CARBON_INTENSITY_JSON),
        ("uk_regional_intensity.json", ImportFormat.UK_CARBON_INTENSITY_JSON),
        ("uk_regionid_13.json", ImportFormat.UK_CARBON_INTENSITY_JSON),
        ("watttime_forecast_CAISO_NORTH.json", ImportFormat.WATTTIME_JSON),
        ("codecarbon_emissions.csv", ImportFormat.CODECARBON_CSV),
    ],
)
def test_each_real_format_is_recognised_from_its_content(name: str, expected: ImportFormat) -> None:
    data = (FIXTURES / name).read_bytes()
    assert detect_format(data, name) is expected
    assert detect_format(data, "renamed.txt") is expected  # the name is only a hint


def test_import_intensity_file_dispatches_to_the_right_parser() -> None:
    records = import_intensity_file((FIXTURES / "uk_national_intensity.json").read_bytes(), "intensity.json")
    assert {r.source for r in records} == {"UK Carbon Intensity API (NESO)"}


def test_codecarbon_files_are_pointed_to_their_own_parser() -> None:
    with pytest.raises(CarbonImportError, match="use parse_codecarbon_csv"):
        import_intensity_file((FIXTURES / "codecarbon_emissions.csv").read_bytes())


def test_unknown_files_are_rejected_clearly() -> None:
    with pytest.raises(CarbonImportError, match=r"unrecognised file 'prices\.csv'"):
        detect_format(b"date,price_eur_per_mwh\n2024-01-01,80\n", "prices.csv")
    with pytest.raises(CarbonImportError, match="unrecognised JSON"):
        detect_format(b'{"hello": "world"}')
    with pytest.raises(CarbonImportError, match="empty"):
        detect_format(b"   \n")

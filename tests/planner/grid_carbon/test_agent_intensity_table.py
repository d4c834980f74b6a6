"""The agent's yearly intensity table (agents/wattwise_agent/data/yearly_intensity.json) is this library's data,
and the agent's look-ups give what the library's fallback chain gives an hour without hourly data: for
every zone, cloud region and country code, every year."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from planner.grid_carbon import IntensityResolver, cloud_regions, compute_emissions
from planner.grid_carbon.agent_table import main, table_text
from planner.grid_carbon.datasets import country_codes, electricity_maps_yearly, iso3_to_iso2
from planner.grid_carbon.regions import UnknownLocationError, locate
from planner.units import J_PER_KWH
from wattwise_agent import grid_intensity

SHIPPED = Path(grid_intensity.__file__).parent / "data" / "yearly_intensity.json"
YEARS = range(2019, 2028)  # before, across and after the data's years (nearest year rules)


def places() -> list[str]:
    zones = sorted({z for by_zone in electricity_maps_yearly().values() for z in by_zone})
    regions = sorted(cloud_regions())
    codes = sorted(country_codes())
    return [
        *zones,
        *(z.lower() for z in zones),
        *regions,
        *(r.upper() for r in regions),
        *codes,
        *sorted(iso3_to_iso2()),
        *(c.lower() for c in sorted(iso3_to_iso2())),
        # Not in the data: enclosed by a zone that is, a country's, nobody's.
        "GB-CI-13", "SE-SE3-X", "US-XYZ", "DE-NORTH", "ZZ-FOO", "XX", "foo.bar_1",
    ]


def test_the_shipped_table_is_what_the_library_generates() -> None:
    assert SHIPPED.read_text(encoding="utf-8") == table_text(), (
        "regenerate: python -m planner.grid_carbon.agent_table agents/wattwise_agent/data/yearly_intensity.json")
    assert main(["--check", str(SHIPPED)]) == 0


def test_the_check_says_when_the_file_is_out_of_date(tmp_path, capsys) -> None:
    stale = tmp_path / "yearly_intensity.json"
    stale.write_text("{}\n")
    assert main(["--check", str(stale)]) == 1
    assert "is out of date: run python -m planner.grid_carbon.agent_table" in capsys.readouterr().err


def test_the_agent_converts_energy_with_the_units_module() -> None:
    assert grid_intensity.j_per_kwh() == J_PER_KWH


def test_the_agent_finds_the_yearly_intensity_the_library_resolves_for_every_place_and_year() -> None:
    resolver = IntensityResolver()  # no hourly data: the yearly steps of the chain
    checked = 0
    for where in places():
        library_location = locate(where)
        place = grid_intensity.locate(where)
        for year in YEARS:
            expected = resolver.resolve(library_location, datetime(year, 6, 1, tzinfo=UTC))
            got = grid_intensity.yearly_intensity(place, year)
            assert (got.g_per_kwh, got.step, got.data_year) == (
                expected.intensity_g_per_kwh, expected.step, expected.year), (where, year)
            checked += 1
    assert checked > 1500 * len(YEARS) // 2


@pytest.mark.parametrize("where", ["aws:mars-central-1", "oracle:eu-1", "", "not a zone!"])
def test_a_place_the_library_cannot_locate_the_agent_cannot_either(where: str) -> None:
    with pytest.raises(UnknownLocationError):
        locate(where)
    with pytest.raises(grid_intensity.UnknownPlace):
        grid_intensity.locate(where)


@pytest.mark.parametrize("zone, region", [("DE", None), (None, "aws:eu-north-1"), ("SE-SE3", "aws:us-east-1"),
                                          ("GB-CI-13", None), ("US-XYZ", None)])
def test_the_agent_computes_the_emissions_the_library_computes_across_a_new_year(zone, region) -> None:
    # Three hours in 2021, two in 2022: the yearly figures differ, and each hour takes its own year's.
    first = datetime(2021, 12, 31, 21, tzinfo=UTC)
    energy_j_by_hour = {first + timedelta(hours=k): 1.0e6 * (k + 1) + 0.123 for k in range(5)}
    where = zone or region
    expected = compute_emissions(energy_j_by_hour, where=where, pue=1.0).location_emissions_g
    by_year: dict[int, float] = {}
    for hour, energy_j in energy_j_by_hour.items():
        by_year[hour.year] = by_year.get(hour.year, 0.0) + energy_j
    place = grid_intensity.run_place(zone, region)
    assert place is not None
    assert grid_intensity.emissions(place, by_year).emissions_g == pytest.approx(expected, rel=1e-12)

"""Plain equivalents use the EEA car factors shipped in Carbontracker's co2eq.csv."""

from __future__ import annotations

import pytest

from planner.grid_carbon import car_km, equivalents


def test_car_km_uses_the_eea_2020_new_car_average_by_default() -> None:
    km = car_km(1075.0)
    assert km.value == pytest.approx(10.0)  # 1075 g / 107.5 g/km
    assert km.unit == "km" and "EEA" in km.source and "2020" in km.label


def test_all_equivalents_are_listed_newest_factor_first() -> None:
    values = [(e.factor_g_per_unit, round(e.value, 6)) for e in equivalents(1204.0)]
    assert values == [(107.5, round(1204.0 / 107.5, 6)), (120.4, 10.0)]


def test_unknown_factor_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown car factor"):
        car_km(1.0, factor="moon_buggy")

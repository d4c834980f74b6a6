"""Quantities print with three significant figures in the unit that fits (planner.units), and the
template filters print through it: never "1.3e-05 USD", "0.0000 t" or "0 km" for a small run."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard.web.templatetags.units import co2, gkwh, km, kwh, kwh_value, money, sig, tonnes
from planner.units import (
    ENERGY_UNITS_WH,
    MASS_UNITS_G,
    format_distance_km,
    format_energy_j,
    format_mass_g,
    format_money,
    scaled,
    significant,
)


@pytest.mark.parametrize(("value", "text"), [
    (0.000012345, "0.0000123"), (0.5, "0.500"), (2.0, "2.00"), (12.345, "12.3"), (999.6, "1,000"),
    (2979.05, "2,979"), (-0.04567, "-0.0457"), (0.0, "0"), (0.9996, "1.00"),
])
def test_significant_figures(value, text):
    assert significant(value) == text


@pytest.mark.parametrize(("grams", "text"), [
    (0.013, "13.0 mg"), (0.0000123, "0.0123 mg"), (295.6, "296 g"), (2979.05, "2.98 kg"), (999.9, "1.00 kg"),
    (2_750_000.0, "2.75 t"), (0.0, "0 g"), (-1500.0, "-1.50 kg"),
])
def test_masses_take_mg_g_kg_or_t(grams, text):
    assert format_mass_g(grams) == text


@pytest.mark.parametrize(("joules", "text"), [
    (3.6, "1.00 mWh"), (12.5, "3.47 mWh"), (3600.0, "1.00 Wh"), (46_306_800.0, "12.9 kWh"),
    (3.6e9, "1.00 MWh"), (3.6e13, "10.0 GWh"), (0.0, "0 Wh"),
])
def test_energies_take_mwh_to_gwh(joules, text):
    assert format_energy_j(joules) == text


@pytest.mark.parametrize(("amount", "text"), [
    (0.000013, "< 0.01 USD"), (0.0049, "< 0.01 USD"), (0.006, "0.01 USD"), (24.0, "24.00 USD"),
    (1234.5, "1,234.50 USD"), (0.0, "0.00 USD"),
])
def test_money_is_to_the_cent_with_its_currency(amount, text):
    assert format_money(amount, "USD") == text


@pytest.mark.parametrize(("distance_km", "text"), [(0.0263, "26.3 m"), (12.0, "12.0 km"), (0.0000426, "4.26 cm")])
def test_distances_take_the_unit_that_fits(distance_km, text):
    assert format_distance_km(distance_km) == text


@given(st.floats(min_value=1e-9, max_value=1e15), st.sampled_from([MASS_UNITS_G, ENERGY_UNITS_WH]))
def test_a_scaled_quantity_reads_back_within_half_a_unit_of_its_last_figure(value, units):
    number, unit = scaled(value, units).split(" ")
    factor = dict((name, f) for f, name in units)[unit]
    shown = float(number.replace(",", ""))
    assert shown != 0  # a positive quantity never prints as zero
    digits = len(number.replace(",", "").replace(".", "").lstrip("0").lstrip("-"))
    assert digits >= 3 or shown >= 100
    last_place = 10.0 ** (math.floor(math.log10(abs(shown))) - max(digits, 3) + 1)
    assert abs(shown * factor - value) <= 0.5 * last_place * factor * (1 + 1e-9) + value * 1e-12


def test_the_template_filters_print_a_tiny_run_readably():
    assert co2(0.0123) == "12.3 mg CO₂e"
    assert tonnes(0.00000275) == "2.75 g" and tonnes(2.75) == "2.75 t"
    assert money(0.000013, "USD") == "< 0.01 USD"
    assert km(0.000114) == "11.4 cm"
    assert kwh(12.5) == "3.47 mWh" and kwh_value(0.0001) == "100 mWh"
    assert gkwh(20.4) == "20.4 g/kWh" and sig(0.0421) == "0.0421"
    assert co2(None) == kwh(None) == money(None) == "–"


@pytest.mark.parametrize(("largest_j", "unit"), [(2163.0, "mWh"), (90_000.0, "Wh"), (4.6e7, "kWh"), (3.6e10, "MWh")])
def test_an_energy_axis_takes_the_unit_of_its_largest_value(largest_j, unit):
    from planner.units import energy_unit

    per_unit, name = energy_unit(largest_j)
    assert name == unit and 1 <= largest_j / per_unit < 1000


def test_a_time_axis_of_a_few_seconds_is_widened_and_a_long_one_left_to_plotly():
    from dashboard.web.figures import time_axis

    short = time_axis([1_700_000_000_000.0, 1_700_000_004_000.0])
    assert short["autorange"] is False and short["range"] == ["2023-11-14 22:13:17.000", "2023-11-14 22:13:27.000"]
    fourteen_s = time_axis([1_700_000_000_000.0, 1_700_000_014_000.0])  # a short run fills its chart
    assert fourteen_s["autorange"] is True and "range" not in fourteen_s
    assert time_axis([0.0, 3_600_000.0])["autorange"] is True and "range" not in time_axis([0.0, 3_600_000.0])


def test_savings_changes_and_iteration_figures_print_with_their_sign_and_unit():
    from dashboard.web.templatetags.units import fraction_pct, joules_si, seconds_si, signed_fraction_pct

    assert fraction_pct(0.1625) == "16.2 %" and fraction_pct(-0.05) == "−5.0 %" and fraction_pct(0.0) == "0.0 %"
    assert signed_fraction_pct(0.004) == "+0.4 %" and signed_fraction_pct(-0.012) == "−1.2 %"
    assert signed_fraction_pct(0.00001) == "±0.0 %" and signed_fraction_pct(None) == "–"
    assert seconds_si(1.0116) == "1.01 s" and seconds_si(0.412) == "412 ms" and joules_si(166.0) == "166 J"

"""Unit conversions used across the carbon library.

Every quantity in this package carries its unit in its name (``energy_j``, ``energy_kwh``,
``intensity_g_per_kwh``, ``emissions_g``). Conversions live here, once, so that a wrong factor can only
be wrong in one place.
"""

from __future__ import annotations

J_PER_KWH = 3_600_000.0
"""One kilowatt-hour is 1000 W for 3600 s."""

KWH_PER_MWH = 1000.0
G_PER_KG = 1000.0
G_PER_TONNE = 1_000_000.0

G_PER_LB = 453.59237
"""The international avoirdupois pound, exactly."""

LBS_PER_MWH_TO_G_PER_KWH = G_PER_LB / KWH_PER_MWH
"""WattTime reports lbs CO2 per MWh; 1 lb/MWh = 0.45359237 g/kWh."""


def joules_to_kwh(energy_j: float) -> float:
    """Convert joules to kilowatt-hours."""
    return energy_j / J_PER_KWH


def kwh_to_joules(energy_kwh: float) -> float:
    """Convert kilowatt-hours to joules."""
    return energy_kwh * J_PER_KWH


def mwh_to_kwh(energy_mwh: float) -> float:
    """Convert megawatt-hours to kilowatt-hours (certificates are usually sold per MWh)."""
    return energy_mwh * KWH_PER_MWH


def lbs_per_mwh_to_g_per_kwh(intensity_lbs_per_mwh: float) -> float:
    """Convert an intensity in lbs CO2/MWh (WattTime) to g CO2/kWh."""
    return intensity_lbs_per_mwh * LBS_PER_MWH_TO_G_PER_KWH


def grams_to_tonnes(emissions_g: float) -> float:
    """Convert grams of CO2e to tonnes (one carbon credit covers one tonne)."""
    return emissions_g / G_PER_TONNE

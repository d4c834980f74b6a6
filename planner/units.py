"""Units: every conversion factor Wattwise uses, once, so that a wrong factor can only be wrong here.

Every quantity carries its unit in its name (``energy_j``, ``energy_kwh``, ``power_mw``, ``t_ms``,
``intensity_g_per_kwh``, ``emissions_g``). Pure Python: the libraries, the apps and the benchmarks
all import it, and it imports nothing.
"""

from __future__ import annotations

# --- time ----------------------------------------------------------------------------------------------

MS_PER_S = 1000
S_PER_MINUTE = 60
S_PER_HOUR = 3600
MS_PER_MINUTE = MS_PER_S * S_PER_MINUTE
MS_PER_HOUR = MS_PER_S * S_PER_HOUR
MS_PER_DAY = 24 * MS_PER_HOUR

# --- energy and power ----------------------------------------------------------------------------------

MILLIJOULES_PER_J = 1000
"""Millijoules per joule: NVML's energy counter counts mJ."""
MILLIWATTS_PER_W = 1000
"""Milliwatts per watt: NVML reports power in mW."""
W_PER_KW = 1000
J_PER_KWH = 3_600_000.0
"""One kilowatt-hour is 1000 W for 3600 s."""

KWH_PER_MWH = 1000.0
G_PER_KG = 1000.0
G_PER_TONNE = 1_000_000.0

G_PER_LB = 453.59237
"""The international avoirdupois pound, exactly."""

LBS_PER_MWH_TO_G_PER_KWH = G_PER_LB / KWH_PER_MWH
"""WattTime reports lbs CO2 per MWh; 1 lb/MWh = 0.45359237 g/kWh."""


def minute_start_ms(t_ms: int) -> int:
    """The start of the UTC minute holding ``t_ms`` (epoch ms): the key of a per-minute rollup."""
    return t_ms // MS_PER_MINUTE * MS_PER_MINUTE


def mwh_to_kwh(energy_mwh: float) -> float:
    """Convert megawatt-hours to kilowatt-hours (certificates are usually sold per MWh)."""
    return energy_mwh * KWH_PER_MWH


def lbs_per_mwh_to_g_per_kwh(intensity_lbs_per_mwh: float) -> float:
    """Convert an intensity in lbs CO2/MWh (WattTime) to g CO2/kWh."""
    return intensity_lbs_per_mwh * LBS_PER_MWH_TO_G_PER_KWH


def grams_to_tonnes(emissions_g: float) -> float:
    """Convert grams of CO2e to tonnes (one carbon credit covers one tonne)."""
    return emissions_g / G_PER_TONNE

"""Units: every conversion factor Wattwise uses, once, so that a wrong factor can only be wrong here.

Every quantity carries its unit in its name (``energy_j``, ``energy_kwh``, ``power_mw``, ``t_ms``,
``intensity_g_per_kwh``, ``emissions_g``). Pure Python: the libraries, the apps and the benchmarks
all import it, and it imports nothing.
"""

from __future__ import annotations

import math

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


# --- printing quantities -------------------------------------------------------------------------------
# Every page, export note and message prints a quantity through these: three significant figures, in the
# unit that keeps the number between 1 and 1000 ("12.3 mg", "2.98 kg", "1.50 MWh"), never "1.3e-05" or a
# zero that hides a small amount.

SIGNIFICANT_FIGURES = 3
MASS_UNITS_G = ((1e-3, "mg"), (1.0, "g"), (G_PER_KG, "kg"), (G_PER_TONNE, "t"))
ENERGY_UNITS_WH = ((1e-3, "mWh"), (1.0, "Wh"), (1e3, "kWh"), (1e6, "MWh"), (1e9, "GWh"))
DISTANCE_UNITS_M = ((1e-3, "mm"), (1e-2, "cm"), (1.0, "m"), (1e3, "km"))
J_PER_WH = J_PER_KWH / 1000
M_PER_KM = 1000.0


def significant(value: float, digits: int = SIGNIFICANT_FIGURES) -> str:
    """``value`` to ``digits`` significant figures, in positional notation with thousands separators.

    ``significant(0.000012345) == "0.0000123"``, ``significant(2979.05) == "2,980"``; whole numbers of
    more than ``digits`` digits keep them all (``"12,863"``): rounding 12,863 kWh to 12,900 would only
    look precise.
    """
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    decimals = max(digits - 1 - math.floor(math.log10(abs(value))), 0)
    rounded = round(value, decimals)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > math.floor(math.log10(abs(value))):
        decimals = max(decimals - 1, 0)  # 999.6 rounded up to 1000: one digit fewer after the point
    return f"{rounded:,.{decimals}f}"


def scaled(value: float, units: tuple[tuple[float, str], ...]) -> str:
    """``value`` (in the units' base) in the largest unit it reaches, e.g. ``scaled(2980, MASS_UNITS_G)``
    is ``"2.98 kg"``; below the smallest unit, in the smallest; zero in the base unit."""
    if value == 0 or not math.isfinite(value):
        base = next((name for factor, name in units if factor == 1.0), units[0][1])
        return f"{significant(value)} {base}"
    factor, name = units[0]
    for unit_factor, unit_name in units:
        if abs(value) >= unit_factor * (1 - 0.5 * 10.0 ** -SIGNIFICANT_FIGURES):  # 999.9 g prints "1.00 kg"
            factor, name = unit_factor, unit_name
    return f"{significant(value / factor)} {name}"


def energy_unit(largest_energy_j: float) -> tuple[float, str]:
    """Joules per unit, and the unit (mWh … GWh), for an axis whose largest value is ``largest_energy_j``:
    a few seconds' energy reads "636 mWh", not "0.000636 kWh" or "636µ kWh"."""
    factor, name = ENERGY_UNITS_WH[0]
    for unit_factor, unit_name in ENERGY_UNITS_WH:
        if abs(largest_energy_j) / J_PER_WH >= unit_factor:
            factor, name = unit_factor, unit_name
    return factor * J_PER_WH, name


SI_PREFIXES = ((1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, ""), (1e3, "k"))


def format_si(value: float, unit: str) -> str:
    """A quantity per unit of work with an SI prefix (n … k): ``format_si(0.00213, "J") == "2.13 mJ"``."""
    return scaled(value, tuple((factor, prefix + unit) for factor, prefix in SI_PREFIXES))


def format_mass_g(mass_g: float) -> str:
    """Grams (of CO₂e) as mg, g, kg or t: ``"13.0 mg"``, ``"2.98 kg"``."""
    return scaled(mass_g, MASS_UNITS_G)


def format_energy_j(energy_j: float) -> str:
    """Joules as mWh … GWh: ``"12.9 kWh"``, ``"3.47 Wh"``."""
    return scaled(energy_j / J_PER_WH, ENERGY_UNITS_WH)


def format_energy_kwh(energy_kwh: float) -> str:
    return scaled(energy_kwh * 1000, ENERGY_UNITS_WH)


def format_distance_km(distance_km: float) -> str:
    """Kilometres as mm, cm, m or km: a small run's car equivalent is "35.2 m", not "0 km"."""
    return scaled(distance_km * M_PER_KM, DISTANCE_UNITS_M)


def format_fraction_pct(fraction: float, *, signed: bool = False) -> str:
    """A fraction as a percentage to one decimal: ``0.162`` is ``"16.2 %"``; ``signed``: ``"+0.4 %"``,
    ``"−1.2 %"`` (a real minus sign) and ``"±0.0 %"``."""
    text = f"{abs(fraction) * 100:,.1f} %"
    if not signed:
        return ("−" if fraction < 0 and text != "0.0 %" else "") + text
    if text == "0.0 %":
        return "±" + text
    return ("+" if fraction > 0 else "−") + text


def format_money(amount: float, currency: str) -> str:
    """Money to the cent with its currency; a positive amount below a cent reads ``"< 0.01 USD"``."""
    if 0 < abs(amount) < 0.005:
        return f"{'> −' if amount < 0 else '< '}0.01 {currency}".strip()
    return f"{amount:,.2f} {currency}".strip()

"""Template filters that print a quantity with its unit: the only place templates format quantities.

Each is a thin wrapper over :mod:`planner.units` (three significant figures, the unit that fits: mg … t,
mWh … GWh, m or km, money to the cent with its currency), so pages, exports and messages print alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import template

from planner.units import (
    G_PER_TONNE,
    MS_PER_S,
    S_PER_HOUR,
    S_PER_MINUTE,
    W_PER_KW,
    format_distance_km,
    format_energy_j,
    format_energy_kwh,
    format_fraction_pct,
    format_mass_g,
    format_money,
    format_si,
    significant,
)

register = template.Library()
NONE = "–"


@register.filter
def kwh(energy_j: float | None) -> str:
    """Energy given in joules, in mWh … GWh."""
    return NONE if energy_j is None else format_energy_j(energy_j)


@register.filter
def kwh_value(energy_kwh: float | None) -> str:
    """Energy given in kWh, in mWh … GWh."""
    return NONE if energy_kwh is None else format_energy_kwh(energy_kwh)


@register.filter
def watts(power_w: float | None) -> str:
    """Watts, or kilowatts from 10 kW on; a difference of power (negative) reads the same way."""
    if power_w is None:
        return NONE
    return f"{power_w / W_PER_KW:,.2f} kW" if abs(power_w) >= 10 * W_PER_KW else f"{power_w:,.0f} W"


@register.filter
def co2(emissions_g: float | None) -> str:
    """Grams of CO₂e, in mg, g, kg or t."""
    return NONE if emissions_g is None else f"{format_mass_g(emissions_g)} CO₂e"


@register.filter
def signed_co2(emissions_g: float | None) -> str:
    """A saving: positive means less than the baseline."""
    if emissions_g is None:
        return NONE
    return ("−" if emissions_g < 0 else "") + co2(abs(emissions_g))


@register.filter
def tonnes(value_t: float | None) -> str:
    """Tonnes of credits (one credit, one tonne of CO₂e), printed as a mass: "2.75 kg", "1.20 t"."""
    return NONE if value_t is None else format_mass_g(value_t * G_PER_TONNE)


@register.filter
def gkwh(intensity: float | None) -> str:
    return NONE if intensity is None else f"{significant(intensity)} g/kWh"


@register.filter
def sig(value: float | None) -> str:
    """A plain number to three significant figures ("0.0421", "2.50", "1,234")."""
    return NONE if value is None else significant(value)


@register.filter
def pct(value: float | None) -> str:
    return NONE if value is None else f"{value:,.1f} %"


@register.filter
def fraction_pct(fraction: float | None) -> str:
    """A fraction as a percentage: 0.162 → "16.2 %"."""
    return NONE if fraction is None else format_fraction_pct(fraction)


@register.filter
def signed_fraction_pct(fraction: float | None) -> str:
    """A change as a signed percentage: 0.004 → "+0.4 %", −0.012 → "−1.2 %"."""
    return NONE if fraction is None else format_fraction_pct(fraction, signed=True)


@register.filter
def money(amount: float | None, currency: str = "") -> str:
    """To the cent, with the currency; a fraction of a cent reads "< 0.01 USD"."""
    return NONE if amount is None else format_money(amount, currency)


@register.filter
def km(distance_km: float | None) -> str:
    return NONE if distance_km is None else format_distance_km(distance_km)


@register.filter
def duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    seconds = round(seconds)
    hours, rest = divmod(seconds, S_PER_HOUR)
    minutes, secs = divmod(rest, S_PER_MINUTE)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


@register.filter
def thousands(value: int | float | None) -> str:
    return NONE if value is None else f"{value:,.0f}"


@register.filter
def ms_to_local(epoch_ms: int | None) -> str:
    """Epoch ms as the value of a UTC <input type=datetime-local> (YYYY-MM-DDTHH:MM:SS)."""
    if epoch_ms is None:
        return ""
    return datetime.fromtimestamp(epoch_ms / MS_PER_S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def si(value: float | None, unit: str) -> str:
    """A quantity per unit of work with an SI prefix, three significant figures: 0.00213 J → "2.13 mJ"."""
    return NONE if value is None else format_si(value, unit)


@register.filter
def joules_si(energy_j: float | None) -> str:
    """Energy per unit of work: "2.13 mJ" (per token), "1.20 kJ" (per step)."""
    return si(energy_j, "J")


@register.filter
def seconds_si(time_s: float | None) -> str:
    """A short time, as an iteration's: "1.01 s", "412 ms"."""
    return si(time_s, "s")


@register.filter
def grams_si(emissions_g: float | None) -> str:
    """Emissions per unit of work: "4.10 µg" CO2e (per token)."""
    return si(emissions_g, "g")


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    """``mapping[key]``, or None: a count by unit of work in a template (``counts|get_item:"tokens"``)."""
    return mapping.get(key) if mapping else None


@register.filter
def energy_per(figures: Any, unit: str) -> float | None:
    """``figures.energy_per(unit)``: a family's (or run's) energy per unit of work, in joules."""
    return figures.energy_per(unit)


@register.filter
def emissions_per(figures: Any, unit: str) -> float | None:
    """``figures.emissions_per(unit)``: grams CO2e per unit of work."""
    return figures.emissions_per(unit)

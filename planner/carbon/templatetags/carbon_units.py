"""Template filters for carbon quantities, each printed with its unit."""

from __future__ import annotations

from django import template

from planner.units import G_PER_KG, G_PER_TONNE

register = template.Library()


@register.filter
def co2(emissions_g: float | None) -> str:
    """Grams of CO₂e, in g, kg or t as fits."""
    if emissions_g is None:
        return "–"
    if abs(emissions_g) >= G_PER_TONNE:
        return f"{emissions_g / G_PER_TONNE:,.3f} t CO₂e"
    if abs(emissions_g) >= G_PER_KG:
        return f"{emissions_g / G_PER_KG:,.2f} kg CO₂e"
    return f"{emissions_g:,.1f} g CO₂e"


@register.filter
def gkwh(intensity: float | None) -> str:
    return "–" if intensity is None else f"{intensity:,.0f} g/kWh"


@register.filter
def kwh_value(energy_kwh: float | None) -> str:
    if energy_kwh is None:
        return "–"
    return f"{energy_kwh:,.3f} kWh" if energy_kwh < 100 else f"{energy_kwh:,.1f} kWh"


@register.filter
def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} %"


@register.filter
def money(amount: float | None, currency: str = "") -> str:
    if amount is None:
        return "–"
    # Single runs often cost fractions of a cent to offset: keep two significant digits there.
    text = f"{amount:,.2f}" if amount == 0 or abs(amount) >= 1 else f"{amount:.2g}"
    return f"{text} {currency}".strip()


@register.filter
def signed_co2(emissions_g: float | None) -> str:
    """A saving: positive means less than the baseline."""
    if emissions_g is None:
        return "–"
    return ("−" if emissions_g < 0 else "") + co2(abs(emissions_g))


@register.filter
def tonnes(value_t: float | None) -> str:
    """Tonnes (of CO₂e or of credits, one credit a tonne), to three significant figures."""
    if value_t is None:
        return "–"
    return "0 t" if value_t == 0 else f"{value_t:#.3g}".rstrip(".") + " t"

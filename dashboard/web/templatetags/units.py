"""Template filters that print a quantity with its unit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import template

from planner.units import J_PER_KWH, MS_PER_S, S_PER_HOUR, S_PER_MINUTE, W_PER_KW

register = template.Library()


@register.filter
def kwh(energy_j: float | None) -> str:
    if energy_j is None:
        return "–"
    value = energy_j / J_PER_KWH
    return f"{value:,.3f} kWh" if value < 100 else f"{value:,.1f} kWh"


@register.filter
def watts(power_w: float | None) -> str:
    """Watts, or kilowatts from 10 kW on; a difference of power (negative) reads the same way."""
    if power_w is None:
        return "–"
    return f"{power_w / W_PER_KW:,.2f} kW" if abs(power_w) >= 10 * W_PER_KW else f"{power_w:,.0f} W"


@register.filter
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
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
    return "–" if value is None else f"{value:,.0f}"


@register.filter
def ms_to_local(epoch_ms: int | None) -> str:
    """Epoch ms as the value of a UTC <input type=datetime-local> (YYYY-MM-DDTHH:MM:SS)."""
    if epoch_ms is None:
        return ""
    return datetime.fromtimestamp(epoch_ms / MS_PER_S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")



_PREFIXES = ((1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))


def si(value: float | None, unit: str) -> str:
    """A small or large quantity with an SI prefix, to three significant figures: ``0.00213`` J → "2.13 mJ"."""
    if value is None:
        return "–"
    size = abs(value)
    for scale, prefix in _PREFIXES:
        if size >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}" if size else f"0 {unit}"


@register.filter
def joules_si(energy_j: float | None) -> str:
    """Energy per unit of work: "2.13 mJ" (per token), "1.2 kJ" (per step)."""
    return si(energy_j, "J")


@register.filter
def grams_si(emissions_g: float | None) -> str:
    """Emissions per unit of work: "4.1 µg" CO2e (per token)."""
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

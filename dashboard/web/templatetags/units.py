"""Template filters that print a quantity with its unit."""

from __future__ import annotations

from datetime import UTC, datetime

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


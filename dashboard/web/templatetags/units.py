"""Template filters that print a quantity with its unit."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template

register = template.Library()

J_PER_KWH = 3.6e6


@register.filter
def kwh(energy_j: float | None) -> str:
    if energy_j is None:
        return "–"
    value = energy_j / J_PER_KWH
    return f"{value:,.3f} kWh" if value < 100 else f"{value:,.1f} kWh"


@register.filter
def watts(power_w: float | None) -> str:
    if power_w is None:
        return "–"
    return f"{power_w / 1000:,.2f} kW" if power_w >= 10_000 else f"{power_w:,.0f} W"


@register.filter
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
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
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


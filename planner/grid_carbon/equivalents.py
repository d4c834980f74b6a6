"""Plain-language equivalents of an emissions figure ("as much as driving 120 km").

Only factors with a named source are used: the European Environment Agency's average CO₂ of *new*
passenger cars per km (2018: 120.4 g/km, 2020: 107.5 g/km), shipped in Carbontracker's ``co2eq.csv``.
Equivalents are for intuition, never for accounting.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.grid_carbon.datasets import car_factors
from planner.grid_carbon.records import check_intensity

DEFAULT_CAR = "eu_new_car_2020"


@dataclass(frozen=True, slots=True)
class Equivalent:
    """``value`` of ``unit`` emits the same as the figure it was computed from."""

    value: float
    unit: str
    factor_g_per_unit: float
    label: str
    source: str


def car_km(emissions_g: float, *, factor: str = DEFAULT_CAR) -> Equivalent:
    """Kilometres driven in an average new EU car (EEA) that emit ``emissions_g``."""
    check_intensity(emissions_g, what="emissions_g")
    car = car_factors().get(factor)
    if car is None:
        raise ValueError(f"unknown car factor {factor!r}; choose from {sorted(car_factors())}")
    year = factor.rsplit("_", 1)[-1]
    return Equivalent(
        value=emissions_g / car.g_per_km,
        unit="km",
        factor_g_per_unit=car.g_per_km,
        label=f"km driven in an average new EU car ({year})",
        source=f"EEA via Carbontracker co2eq.csv: {car.source}",
    )


def equivalents(emissions_g: float) -> list[Equivalent]:
    """All available equivalents for ``emissions_g`` (newest factor first)."""
    return [car_km(emissions_g, factor=name) for name in sorted(car_factors(), reverse=True)]

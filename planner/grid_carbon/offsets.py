"""Offsets: what it would cost to retire carbon credits for an emissions figure.

A carbon credit is one tonne of CO₂e avoided or removed, issued and retired in a registry (Verra,
Gold Standard, ACR, CAR, Puro.earth, Isometric…). Credits are **never subtracted** from the emissions
reported by :mod:`emissions`: the GHG Protocol keeps Scope 2 inventories gross, and SBTi treats credits
as "beyond value chain mitigation". This module only prices a separate ledger entry::

    tonnes_to_retire = emissions_t × (1 + buffer_pct / 100)
    cost             = credits × price_per_tonne

A project's :func:`balance` nets the tonnes already retired against what its runs need, and rounds up to
whole credits (when registries sell only whole tonnes) once, on that total: rounding each run would buy
a tonne per run.

The buffer covers reversal risk (forests burn) and uncertainty. Credit types differ by what they buy
and by price, so the type and the price's source and date travel with every quote. The default price
table is *indicative* (public market reports from 2024–2026, each named with its date below; see
docs/carbon.md, "Offsets") and meant to be overridden by the organisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from planner.grid_carbon.records import check_intensity, check_pct
from planner.units import grams_to_tonnes


class CreditType(StrEnum):
    """What a credit represents."""

    AVOIDANCE = "avoidance"
    """Emissions that did not happen (renewables, cookstoves, avoided deforestation/REDD+)."""
    NATURE_REMOVAL = "nature_removal"
    """CO₂ taken up by forests or soils; may be reversed."""
    DURABLE_REMOVAL = "durable_removal"
    """CO₂ stored for centuries (biochar, direct air capture with storage, enhanced weathering)."""
    CUSTOM = "custom"
    """Anything else, priced by the organisation."""


@dataclass(frozen=True, slots=True)
class CreditPrice:
    """A price per tonne for a credit type, with where and when it was quoted."""

    credit_type: CreditType
    price_per_tonne: float
    currency: str
    source: str
    as_of: date
    note: str = ""

    def __post_init__(self) -> None:
        check_intensity(self.price_per_tonne, what="price_per_tonne")


DEFAULT_PRICES: dict[CreditType, CreditPrice] = {
    CreditType.AVOIDANCE: CreditPrice(
        CreditType.AVOIDANCE,
        6.0,
        "USD",
        "broad voluntary-market average ≈ $6/t (legalclarity.org); legacy CDM ≈ $1/t, Gold Standard > $10/t",
        date(2025, 1, 1),
        "indicative; single-digit USD is typical for avoidance credits",
    ),
    CreditType.NATURE_REMOVAL: CreditPrice(
        CreditType.NATURE_REMOVAL,
        27.0,
        "USD",
        "nature-based removals rated BBB+ up to ~$27/t (CEEZER/Sylvera via decarbonfuse, H1 2025)",
        date(2025, 6, 30),
        "indicative upper end for good-quality nature removals",
    ),
    CreditType.DURABLE_REMOVAL: CreditPrice(
        CreditType.DURABLE_REMOVAL,
        150.0,
        "USD",
        "biochar ≈ $100–200/t (mid-point); direct air capture costs several hundred $/t",
        date(2025, 6, 30),
        "indicative; DAC is far above this",
    ),
}
"""Indicative defaults (see docs/carbon.md §Offsets); ``CUSTOM`` has no default on purpose."""

REFERENCE_PRICES: dict[str, CreditPrice] = {
    "eu_ets": CreditPrice(
        CreditType.CUSTOM,
        71.0,
        "EUR",
        "EU ETS allowance ≈ €71/t, Feb 2026 (legalclarity.org citing EC)",
        date(2026, 2, 1),
        "compliance-market price, for comparison; not a voluntary credit",
    ),
    "epa_scghg": CreditPrice(
        CreditType.CUSTOM,
        190.0,
        "USD",
        "US EPA social cost of GHG (Dec 2023), 2020 emissions at 2 % discount",
        date(2023, 12, 1),
        "shadow price for internal carbon pricing; not a market price",
    ),
}
"""Not credit prices: reference carbon prices for showing the cost of emissions in other terms."""


@dataclass(frozen=True, slots=True)
class OffsetQuote:
    """What retiring credits for an emissions figure would take and cost (a separate ledger line)."""

    emissions_tonnes: float
    buffer_pct: float
    tonnes_to_retire: float
    credits: float
    credit_type: CreditType
    price_per_tonne: float
    currency: str
    cost: float
    price_source: str
    price_as_of: date


def quote_offsets(
    emissions_g: float,
    credit_type: CreditType | str,
    *,
    buffer_pct: float = 0.0,
    price: CreditPrice | None = None,
    whole_credits: bool = False,
) -> OffsetQuote:
    """Price the credits for ``emissions_g`` (add ``buffer_pct``; round up if registries sell whole tonnes).

    ``price`` defaults to :data:`DEFAULT_PRICES` for the type; ``CUSTOM`` needs an explicit price.
    """
    check_intensity(emissions_g, what="emissions_g")
    buffer = check_pct(buffer_pct, what="buffer_pct")
    assert buffer is not None
    kind = CreditType(credit_type)
    if price is None:
        if kind not in DEFAULT_PRICES:
            raise ValueError(f"no default price for {kind.value!r} credits; pass price=")
        price = DEFAULT_PRICES[kind]
    elif price.credit_type is not kind:
        raise ValueError(f"price is for {price.credit_type.value!r} credits, not {kind.value!r}")
    tonnes = grams_to_tonnes(emissions_g)
    to_retire = tonnes * (1.0 + buffer / 100.0)
    credits = float(math.ceil(to_retire - 1e-9)) if whole_credits else to_retire
    return OffsetQuote(
        emissions_tonnes=tonnes,
        buffer_pct=buffer,
        tonnes_to_retire=to_retire,
        credits=credits,
        credit_type=kind,
        price_per_tonne=price.price_per_tonne,
        currency=price.currency,
        cost=credits * price.price_per_tonne,
        price_source=price.source,
        price_as_of=price.as_of,
    )


@dataclass(frozen=True, slots=True)
class OffsetBalance:
    """A project's offsets: what its runs need, what was retired, what is left to buy and its cost."""

    tonnes_to_retire: float
    """Every run's tonnes with the buffer, gross."""
    retired_tonnes: float
    required_tonnes: float
    """Still to retire: ``tonnes_to_retire`` less ``retired_tonnes``, never below zero."""
    credits: float
    """``required_tonnes``, rounded up once when registries sell whole tonnes."""
    price_per_tonne: float | None
    currency: str | None
    cost: float | None
    """``credits × price_per_tonne``; ``None`` without a price."""


def balance(
    tonnes_to_retire: float, retired_tonnes: float, price: CreditPrice | None, *, whole_credits: bool = False
) -> OffsetBalance:
    """Net ``retired_tonnes`` against ``tonnes_to_retire`` and price what is left at ``price``."""
    check_intensity(tonnes_to_retire, what="tonnes_to_retire")
    check_intensity(retired_tonnes, what="retired_tonnes")
    required = max(tonnes_to_retire - retired_tonnes, 0.0)
    credits = float(math.ceil(required - 1e-9)) if whole_credits else required
    return OffsetBalance(
        tonnes_to_retire=tonnes_to_retire,
        retired_tonnes=retired_tonnes,
        required_tonnes=required,
        credits=credits,
        price_per_tonne=price.price_per_tonne if price else None,
        currency=price.currency if price else None,
        cost=credits * price.price_per_tonne if price else None,
    )

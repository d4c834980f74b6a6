"""Offsets are a separate ledger: tonnes x (1 + buffer) x price per credit type, price with source and date."""

from __future__ import annotations

import math
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planner.grid_carbon import (
    DEFAULT_PRICES,
    CreditPrice,
    CreditType,
    balance,
    compute_emissions,
    quote_offsets,
)


def test_quote_adds_the_buffer_and_prices_by_credit_type() -> None:
    quote = quote_offsets(2_500_000.0, CreditType.NATURE_REMOVAL, buffer_pct=20.0)
    # 2.5 t x 1.2 = 3.0 t; x $27/t = $81
    assert quote.emissions_tonnes == pytest.approx(2.5)
    assert quote.tonnes_to_retire == pytest.approx(3.0)
    assert quote.cost == pytest.approx(81.0)
    assert quote.currency == "USD"
    assert "Sylvera" in quote.price_source and quote.price_as_of == date(2025, 6, 30)


def test_whole_credits_round_up() -> None:
    quote = quote_offsets(1_200_000.0, "avoidance", buffer_pct=10.0, whole_credits=True)
    assert quote.tonnes_to_retire == pytest.approx(1.32)
    assert quote.credits == 2.0
    assert quote.cost == pytest.approx(12.0)  # 2 x $6


def test_custom_credits_need_their_own_price() -> None:
    with pytest.raises(ValueError, match="no default price"):
        quote_offsets(1_000_000.0, CreditType.CUSTOM)
    price = CreditPrice(CreditType.CUSTOM, 40.0, "EUR", "broker quote #123", date(2026, 1, 15))
    assert quote_offsets(1_000_000.0, CreditType.CUSTOM, price=price).cost == pytest.approx(40.0)


def test_a_price_for_another_credit_type_is_refused() -> None:
    with pytest.raises(ValueError, match="price is for 'avoidance' credits"):
        quote_offsets(1.0, CreditType.DURABLE_REMOVAL, price=DEFAULT_PRICES[CreditType.AVOIDANCE])


def test_every_default_price_names_its_source_and_date() -> None:
    for price in DEFAULT_PRICES.values():
        assert price.source and price.as_of.year >= 2024 and price.price_per_tonne > 0


def test_offsets_never_change_reported_emissions() -> None:
    from datetime import UTC, datetime

    report = compute_emissions({datetime(2024, 1, 1, tzinfo=UTC): 3_600_000.0}, where="DE")
    before = report.location_emissions_g
    quote_offsets(report.location_emissions_g, CreditType.AVOIDANCE, buffer_pct=100)
    assert report.location_emissions_g == before
    assert not hasattr(report, "offsets")


def test_negative_emissions_or_buffers_are_rejected() -> None:
    with pytest.raises(ValueError):
        quote_offsets(-1.0, CreditType.AVOIDANCE)
    with pytest.raises(ValueError):
        quote_offsets(1.0, CreditType.AVOIDANCE, buffer_pct=-5)


tonnes = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)


@given(runs=st.lists(tonnes, max_size=8), retired=st.lists(tonnes, max_size=3))
def test_whole_credits_round_the_netted_total_once(runs: list[float], retired: list[float]) -> None:
    price = DEFAULT_PRICES[CreditType.AVOIDANCE]
    owed = balance(sum(runs), sum(retired), price, whole_credits=True)
    left = max(sum(runs) - sum(retired), 0.0)  # the oracle: net first, then round up once
    assert owed.required_tonnes == pytest.approx(left)
    assert owed.credits == math.ceil(left - 1e-9) and owed.credits < left + 1
    assert owed.cost == pytest.approx(owed.credits * price.price_per_tonne) and owed.currency == "USD"


def test_a_balance_without_a_price_has_no_cost_rather_than_zero() -> None:
    owed = balance(2.0, 0.5, None)
    assert (owed.required_tonnes, owed.credits, owed.cost, owed.currency) == (1.5, 1.5, None, None)

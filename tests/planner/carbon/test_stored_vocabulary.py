"""The carbon app stores the grid-carbon library's vocabulary: a choice for every value the library can
produce, and no other."""

from __future__ import annotations

import typing

import pytest

from planner.carbon.models import Basis, CreditType, FallbackStep, Granularity, Signal
from planner.grid_carbon import offsets, records, resolve


@pytest.mark.parametrize(
    ("choices", "library"),
    [
        (Basis, records.Basis),
        (Granularity, records.Granularity),
        (Signal, records.Signal),
        (FallbackStep, resolve.FallbackStep),
    ],
    ids=["basis", "granularity", "signal", "fallback step"],
)
def test_stored_choices_are_the_values_the_library_produces(choices, library):
    assert choices.values == list(typing.get_args(library))


def test_stored_credit_types_are_the_offsets_library_credit_types():
    assert CreditType.values == [kind.value for kind in offsets.CreditType]

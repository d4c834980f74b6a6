"""``wire.json_value`` reads JSON through pydantic's compiled reader, but accepts and refuses exactly what
``json.loads`` does: every value it returns is ``json.loads``'s, and every error too."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattwise_agent import wire

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


def _same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 and 1.0 differ; -0.0 and 0.0 differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


@settings(max_examples=300)
@given(_json_values, st.booleans())
def test_any_json_text_reads_back_as_json_loads_reads_it(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert _same(wire.json_value(text), json.loads(text))
    assert _same(wire.json_value(text.encode()), json.loads(text.encode()))


@pytest.mark.parametrize("text", [
    '"\\ud800"',  # an unpaired surrogate escape: the compiled reader refuses it, json.loads does not
    '{"a": "\ud800"}',  # an unpaired surrogate itself, in a str (a TypeError from the compiled reader)
    "[" * 300 + "]" * 300,  # deeper than the compiled reader follows
    '{"a": 1, "a": 2}', "-0", "-0.0", "1e400", "123456789012345678901234567890.5", '"\\u0000"',
])
def test_what_only_json_loads_accepts_is_still_accepted_the_same(text: str) -> None:
    assert _same(wire.json_value(text), json.loads(text))


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"x": -Infinity}'])
def test_nan_and_infinities_are_refused_unless_allowed(text: str) -> None:
    with pytest.raises(wire.WireError, match="is not a valid number"):
        wire.json_value(text)
    assert repr(wire.json_value(text, allow_nan=True)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ["{} x", '"\t"', "{", "", b"\xff\xfe"])
def test_malformed_text_raises_what_json_loads_raises(text: str | bytes) -> None:
    with pytest.raises(ValueError) as ours:
        wire.json_value(text)
    with pytest.raises(ValueError) as theirs:
        json.loads(text)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)

"""A window's columns are stored losslessly encoded (dashboard.telemetry.columns): every integer in each
column's range comes back exactly, whichever columns a reader asks for, and a blob that is not an encoded
window is refused with a clear error. The oracle is the raw arrays themselves."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dashboard.telemetry import columns
from wattwise_agent import wire

# Each stored column's range: the wire's (timestamps as offsets from the window's first, which fit u4).
RANGES = {
    "t_offset_ms": (0, 2**32 - 1),
    "energy_mj": wire.SAMPLE_COLUMNS["energy_mj"],
    "power_mw": wire.SAMPLE_COLUMNS["power_mw"],
    "sm_clock_mhz": wire.SAMPLE_COLUMNS["sm_clock_mhz"],
    "util_pct": wire.SAMPLE_COLUMNS["util_pct"],
    "temp_c": wire.SAMPLE_COLUMNS["temp_c"],
}


@st.composite
def windows(draw: st.DrawFn, max_samples: int = 80, samples: int | None = None) -> dict[str, np.ndarray]:
    """A window of arbitrary values in each column's range, of any length or of ``samples`` (steady series
    are drawn too)."""
    n = draw(st.integers(0, max_samples)) if samples is None else samples
    out = {}
    for name, (low, high) in RANGES.items():
        if draw(st.booleans()):
            values = draw(hnp.arrays(np.int64, n, elements=st.integers(low, high)))
        else:  # a steady series with small steps: what real readings look like
            start = draw(st.integers(low, high))
            steps = draw(hnp.arrays(np.int64, n, elements=st.integers(-3, 3)))
            values = np.clip(start + np.cumsum(steps), low, high)
        out[name] = values.astype(columns.DTYPES[name])
    return out


@settings(max_examples=300, deadline=None)
@given(windows())
def test_every_column_in_its_range_round_trips_exactly(raw):
    decoded = columns.decode(columns.encode(raw))
    for name, values in raw.items():
        assert decoded[name].dtype == np.dtype(columns.DTYPES[name])
        np.testing.assert_array_equal(decoded[name], values)


@settings(max_examples=100, deadline=None)
@given(st.lists(windows(max_samples=12), min_size=1, max_size=6), st.sets(st.sampled_from(columns.NAMES), min_size=1))
def test_windows_decoded_together_are_the_windows_joined_and_only_the_columns_asked_for(raws, names):
    decoded = columns.decode_many([columns.encode(raw) for raw in raws], names)
    assert set(decoded) == names
    for name in names:
        np.testing.assert_array_equal(decoded[name], np.concatenate([raw[name] for raw in raws]))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.lists(windows(samples=n), min_size=1, max_size=4)))
def test_windows_encoded_together_are_the_bytes_each_gets_alone(raws):
    together = columns.encode_many({name: np.stack([raw[name] for raw in raws]) for name in columns.NAMES})
    assert together == [columns.encode(raw) for raw in raws]


def test_a_counter_jumping_across_its_whole_range_comes_back():
    top = 2**63 - 1
    raw = {name: np.zeros(4, dtype) for name, dtype in columns.DTYPES.items()}
    raw["energy_mj"] = np.array([top, 0, top, 1], np.int64)
    raw["temp_c"] = np.array([-(2**15), 2**15 - 1, -(2**15), 0], np.int16)
    np.testing.assert_array_equal(columns.decode(columns.encode(raw))["energy_mj"], raw["energy_mj"])
    np.testing.assert_array_equal(columns.decode(columns.encode(raw))["temp_c"], raw["temp_c"])


def test_steady_readings_take_a_few_bytes_a_sample():
    n = 50  # 5 s at 10 Hz
    rng = np.random.default_rng(0)
    power_mw = 300_000 + rng.integers(-2_000, 2_000, n)
    raw = {
        "t_offset_ms": np.arange(n) * 100, "energy_mj": 9 * 10**12 + np.cumsum(power_mw // 10),
        "power_mw": power_mw, "sm_clock_mhz": np.full(n, 1980), "util_pct": np.full(n, 97), "temp_c": np.full(n, 61),
    }
    assert len(columns.encode(raw)) < 6 * n  # raw: 22 bytes a sample


@pytest.mark.parametrize("blob", [b"", b"\x00", b"\x02" + bytes(20), b"\x01not zstd", b"\x01" + bytes(30)])
def test_a_blob_that_is_no_encoded_window_is_refused(blob):
    with pytest.raises(columns.CorruptWindow):
        columns.decode(blob)


def test_a_cut_window_is_refused():
    raw = {name: np.arange(10).astype(dtype) for name, dtype in columns.DTYPES.items()}
    blob = columns.encode(raw)
    with pytest.raises(columns.CorruptWindow):
        columns.decode(blob[:-3])

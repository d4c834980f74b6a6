"""The streaming Electricity Maps reader agrees with the whole-file parser (the oracle) on every file whose
zones come in time order: the same records, or an error of the same kind; and on a file that is out of
order it refuses with the lines named, where the whole-file parser would sort."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.grid_carbon.importers import CarbonImportError, parse_electricitymaps_csv
from planner.grid_carbon.importers.electricitymaps_stream import stream_electricitymaps_csv

HEADER = (
    "Datetime (UTC),Country,Zone name,Zone id,Carbon intensity gCO₂eq/kWh (direct),"
    "Carbon intensity gCO₂eq/kWh (Life cycle),Carbon-free energy percentage (CFE%),"
    "Renewable energy percentage (RE%),Data source,Data estimated,Data estimation method"
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEPS = {"5_minute": timedelta(minutes=5), "hourly": timedelta(hours=1), "daily": timedelta(days=1)}


def line(zone: str, when: datetime, value: float, estimated: str = "false") -> str:
    return f"{when:%Y-%m-%d %H:%M:%S},XX,{zone},{zone},{value * 0.8:.2f},{value:.2f},60,50,test,{estimated},"


@st.composite
def files(draw: st.DrawFn) -> tuple[str, str]:
    """A file of 1–3 zones interleaved in time order, then perhaps one fault: a gap, a conflicting or an
    identical repeat, a bad value, a row out of order."""
    kind = draw(st.sampled_from(sorted(STEPS)))
    step = STEPS[kind]
    zones = draw(st.lists(st.sampled_from(["DE", "FR", "SE-SE3"]), min_size=1, max_size=3, unique=True))
    length = draw(st.integers(1, 30))
    lines = [line(zone, T0 + i * step, draw(st.integers(0, 900)) / 4) for i in range(length) for zone in zones]
    fault = draw(st.sampled_from(["none", "gap", "conflict", "repeat", "bad value", "bad flag"]))
    at = draw(st.integers(0, len(lines) - 1))
    zone = zones[at % len(zones)]
    if fault == "gap" and length > 2:
        del lines[at]
    elif fault == "conflict" or fault == "repeat":
        parts = lines[at].split(",")
        if fault == "conflict":
            parts[5] = f"{float(parts[5]) + 1:.2f}"
        lines.insert(at + 1, ",".join(parts))
    elif fault == "bad value":
        lines[at] = lines[at].replace(",60,", ",-1,")
    elif fault == "bad flag":
        lines[at] = line(zone, T0, 1.0, estimated="maybe") if at == 0 else lines[at].replace(",false,", ",maybe,")
    return f"X_2026_{kind}.csv", "\n".join([HEADER, *lines]) + "\n"


def outcome_of(parse) -> tuple[str, object]:
    try:
        records = parse()
    except CarbonImportError as exc:
        return "error", str(exc).split(":")[0]  # the format name: the kind, not the wording
    return "records", sorted(records, key=lambda r: (r.zone, r.start_utc))


@settings(max_examples=200, deadline=None)
@given(files())
def test_the_stream_gives_what_the_whole_file_parser_gives(case):
    name, text = case
    whole = outcome_of(lambda: parse_electricitymaps_csv(text.encode(), filename=name))
    streamed = outcome_of(lambda: list(stream_electricitymaps_csv(io.StringIO(text, newline=""), filename=name)))
    assert streamed == whole


def test_a_row_out_of_time_order_is_refused_with_both_lines_named():
    text = "\n".join([HEADER, line("DE", T0 + timedelta(hours=1), 300), line("DE", T0, 310)]) + "\n"
    with pytest.raises(CarbonImportError, match=r"line 3: rows of DE are not in time order: line 3 .* after line 2"):
        list(stream_electricitymaps_csv(io.StringIO(text, newline=""), filename="DE_2026_hourly.csv"))
    assert len(parse_electricitymaps_csv(text.encode(), filename="DE_2026_hourly.csv")) == 2  # which sorts


def test_the_granularity_of_an_unnamed_file_comes_from_the_spacing_of_its_first_rows():
    rows = [line("DE", T0 + timedelta(days=i), 300 + i) for i in range(3)]
    text = "\n".join([HEADER, *rows]) + "\n"
    records = list(stream_electricitymaps_csv(io.StringIO(text, newline=""), filename="upload.csv"))
    assert [r.granularity for r in records] == ["day"] * 3

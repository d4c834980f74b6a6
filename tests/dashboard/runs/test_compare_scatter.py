"""The compare page's time–energy scatter fits its axes to the runs and keeps their labels apart."""

from __future__ import annotations

import plotly.graph_objects as go
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.runs import scatter_labels
from dashboard.runs.compare_charts import _SCATTER_PLOT_HEIGHT_PX, Point, color_for, time_energy_scatter


def scatter(runs: list[tuple[str, float, float]]) -> dict:
    points = [Point(name, hours, kwh, color_for(i), i == 0) for i, (name, hours, kwh) in enumerate(runs)]
    figure = time_energy_scatter(points).to_plotly_json()
    go.Figure(figure)  # built unvalidated: every property must still be one Plotly knows
    return figure


def test_three_similar_runs_fill_the_axes_instead_of_a_corner_near_zero():
    figure = scatter([("bert-a", 1.00, 10.0), ("bert-b", 1.02, 10.3), ("bert-c", 1.05, 10.1)])
    (x_low, x_high), (y_low, y_high) = figure["layout"]["xaxis"]["range"], figure["layout"]["yaxis"]["range"]
    assert 0.9 < x_low < 1.00 and 1.05 < x_high < 1.15
    assert 9.5 < y_low < 10.0 and 10.3 < y_high < 10.8
    assert [a["text"] for a in figure["layout"]["annotations"]] == ["bert-a", "bert-b", "bert-c"]


def test_a_single_run_sits_in_the_middle_of_its_axes():
    layout = scatter([("only", 2.0, 5.0)])["layout"]
    assert layout["xaxis"]["range"] == [1.8, 2.2] and layout["yaxis"]["range"] == [4.5, 5.5]


def label_boxes(figure: dict, width_px: float) -> list[tuple[float, float, float, float]]:
    """Each label's box in pixels of a plot ``width_px`` wide, computed from the figure alone."""
    layout = figure["layout"]
    (x0, x1), (y0, y1) = layout["xaxis"]["range"], layout["yaxis"]["range"]
    boxes = []
    for a in layout["annotations"]:
        cx = (a["ax"] - x0) / (x1 - x0) * width_px
        cy = (a["ay"] - y0) / (y1 - y0) * _SCATTER_PLOT_HEIGHT_PX
        half_w, half_h = scatter_labels.label_width_px(a["text"]) / 2, scatter_labels.LABEL_HEIGHT_PX / 2
        boxes.append((cx - half_w, cx + half_w, cy - half_h, cy + half_h))
    return boxes


runs = st.lists(
    st.tuples(st.text("abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=24),
              st.floats(0.01, 100.0), st.floats(0.01, 1000.0)),
    min_size=1, max_size=10,
)


@settings(max_examples=60, deadline=None)
@given(runs)
def test_labels_never_overlap_and_every_point_is_inside_the_axes(runs):
    figure = scatter(runs)
    layout = figure["layout"]
    (x0, x1), (y0, y1) = layout["xaxis"]["range"], layout["yaxis"]["range"]
    assert all(x0 < hours < x1 and y0 < kwh < y1 for _, hours, kwh in runs)
    for width_px in (scatter_labels.PLOT_WIDTH_MIN_PX, 700.0, 1200.0):
        boxes = label_boxes(figure, width_px)
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert not (a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]), (a, b)

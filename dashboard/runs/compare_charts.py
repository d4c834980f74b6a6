"""The compare page's charts as pure functions: plain arrays in, a Plotly figure out. No queries here.

Each run keeps one colour across every chart (:func:`color_for` its position), the baseline is drawn
thicker, and every axis title carries its unit.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from dashboard.runs import scatter_labels
from planner.units import J_PER_KWH, S_PER_HOUR, S_PER_MINUTE

# Plotly's default qualitative palette: ten colours for at most ten runs.
COLORS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880", "#ff97ff",
          "#fecb52")
_AXIS = {"gridcolor": "#ebf0f8", "linecolor": "#ebf0f8", "zerolinecolor": "#ebf0f8", "zerolinewidth": 2,
         "automargin": True}
# The look of plotly_white, written out: a named template costs ~15 ms a figure to apply.
_LAYOUT: dict[str, Any] = {
    "template": "none",
    "paper_bgcolor": "white",
    "plot_bgcolor": "white",
    "font": {"color": "#2a3f5f"},
    # The legend sits under the x axis title, with the bottom margin to hold it.
    "margin": {"l": 70, "r": 20, "t": 56, "b": 100},
    "height": 440,
    "hovermode": "x unified",
    "legend": {"orientation": "h", "yanchor": "top", "y": -0.26, "x": 0},
}


def _figure(data: list[dict[str, Any]], title: str, x_title: str, y_title: str, **layout: Any) -> go.Figure:
    """A figure from plain specs, unvalidated: validation costs more than the page's queries (~13 ms a
    figure, half a second the first time in a process). The specs are checked once, in the tests."""
    spec = {**_LAYOUT, "title": {"text": title}, "xaxis": {**_AXIS, "title": {"text": x_title}},
            "yaxis": {**_AXIS, "title": {"text": y_title}}, **layout}
    return go.Figure({"data": data, "layout": spec}, _validate=False)


def color_for(position: int) -> str:
    return COLORS[position % len(COLORS)]


def script_json(figure: go.Figure) -> str:
    """The figure as JSON that may sit inside a ``<script>`` element (escaped like Django's json_script)."""
    text = pio.to_json(figure, validate=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def time_unit(longest_s: float) -> tuple[float, str]:
    """Seconds per unit, and the unit, that make an elapsed-time axis of ``longest_s`` readable."""
    if longest_s >= 2 * S_PER_HOUR:
        return float(S_PER_HOUR), "h"
    if longest_s >= 2 * S_PER_MINUTE:
        return float(S_PER_MINUTE), "min"
    return 1.0, "s"


@dataclass(frozen=True)
class Trace:
    """One run's line: x in the axis unit, y in W (power) or J (energy)."""

    label: str
    x: np.ndarray
    y: np.ndarray
    color: str
    baseline: bool = False


def _line(trace: Trace, y: np.ndarray, hover: str) -> dict[str, Any]:
    return {
        "type": "scatter", "x": np.asarray(trace.x, dtype=np.float64), "y": y, "mode": "lines",
        "name": trace.label + (" (baseline)" if trace.baseline else ""),
        "line": {"color": trace.color, "width": 3 if trace.baseline else 1.8},
        "hovertemplate": hover, "connectgaps": False,
    }


def power_figure(traces: Sequence[Trace], *, x_title: str, title: str = "Total power (all GPUs)") -> go.Figure:
    """One line per run: each bucket's mean total power (its energy over its duration); gaps stay gaps."""
    data = [_line(t, np.asarray(t.y, dtype=np.float64), "%{y:,.0f} W") for t in traces]
    return _figure(data, title, x_title, "Power (W)")


def energy_figure(traces: Sequence[Trace], *, x_title: str, title: str = "Cumulative energy") -> go.Figure:
    """One line per run: energy spent since the run's start, ending at its total."""
    data = [_line(t, np.asarray(t.y, dtype=np.float64) / J_PER_KWH, "%{y:,.4g} kWh") for t in traces]
    return _figure(data, title, x_title, "Energy (kWh)")


@dataclass(frozen=True)
class Point:
    label: str
    duration_h: float
    energy_kwh: float
    color: str
    pareto: bool


# The scatter's plot area is the figure's height less its margins; the legend below may take a little more.
_SCATTER_PLOT_HEIGHT_PX = _LAYOUT["height"] - _LAYOUT["margin"]["t"] - _LAYOUT["margin"]["b"] - 24


def time_energy_scatter(points: Sequence[Point]) -> go.Figure:
    """Duration against energy, one marker per run; runs no other run beats on both are stars on the front.

    Both axes are fitted to the runs, with room for their labels: similar runs would otherwise sit in one
    corner of axes that start at 0. Labels are annotations placed clear of each other (``scatter_labels``).
    """
    data: list[dict[str, Any]] = [
        {
            "type": "scatter", "x": [p.duration_h], "y": [p.energy_kwh], "mode": "markers", "name": p.label,
            "text": [p.label],
            "marker": {"color": p.color, "size": 16 if p.pareto else 11,
                       "symbol": "star" if p.pareto else "circle-open", "line": {"width": 2, "color": p.color}},
            # The name goes in through %{text}: a run name is data, never part of a format string.
            "hovertemplate": "%{text}: %{x:.3g} h, %{y:.4g} kWh" + (" (Pareto-optimal)" if p.pareto else "")
            + "<extra></extra>",
        }
        for p in points
    ]
    front = sorted((p for p in points if p.pareto), key=lambda p: (p.duration_h, p.energy_kwh))
    if len(front) > 1:
        data.append({
            "type": "scatter", "x": [p.duration_h for p in front], "y": [p.energy_kwh for p in front],
            "mode": "lines", "name": "Pareto front", "line": {"color": "#868e96", "dash": "dot", "width": 1.5},
            "hoverinfo": "skip",
        })
    layout: dict[str, Any] = {"hovermode": "closest"}
    if points:
        layout |= _fitted_axes_and_labels(points)
    figure = _figure(data, "Time against energy (★ Pareto-optimal)", "Duration (h)", "Energy (kWh)", **layout)
    return figure


def _fitted_axes_and_labels(points: Sequence[Point]) -> dict[str, Any]:
    xs, ys, labels = [p.duration_h for p in points], [p.energy_kwh for p in points], [p.label for p in points]
    widest_px = max(scatter_labels.label_width_px(label) for label in labels)
    x_axis = scatter_labels.fitted_axis(xs, min(0.3, (widest_px / 2 + 4) / scatter_labels.PLOT_WIDTH_MIN_PX))
    label_room_px = scatter_labels.MARKER_RADIUS_PX + scatter_labels.LABEL_HEIGHT_PX + 2 * scatter_labels.GAP_PX
    y_axis = scatter_labels.fitted_axis(ys, min(0.3, label_room_px / _SCATTER_PLOT_HEIGHT_PX))
    label_ys = scatter_labels.place_labels(xs, ys, labels, x_axis, y_axis, _SCATTER_PLOT_HEIGHT_PX)
    annotations = [
        {"x": p.duration_h, "y": p.energy_kwh, "ax": p.duration_h, "ay": label_y, "axref": "x", "ayref": "y",
         "text": html.escape(p.label), "showarrow": True, "arrowhead": 0, "arrowwidth": 1, "arrowcolor": p.color,
         "standoff": scatter_labels.MARKER_RADIUS_PX, "font": {"size": 12, "color": "#2a3f5f"}}
        for p, label_y in zip(points, label_ys, strict=True)
    ]
    return {"xaxis": {**_AXIS, "title": {"text": "Duration (h)"}, "range": [x_axis.low, x_axis.high]},
            "yaxis": {**_AXIS, "title": {"text": "Energy (kWh)"}, "range": [y_axis.low, y_axis.high]},
            "annotations": annotations}

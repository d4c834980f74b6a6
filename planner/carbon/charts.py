"""Carbon charts as pure functions: plain data in, a Plotly figure out. No queries here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import plotly.graph_objects as go

from dashboard.web.figures import Figure, base_layout, time_axis, typed_array
from planner.units import G_PER_KG, MS_PER_HOUR, MS_PER_S

ATTRIBUTION = (
    "Grid carbon intensity: Electricity Maps (ODbL), Ember via co2.js (CC BY-SA 4.0), Our World in Data "
    "(CC BY 4.0), Google Cloud region-carbon-info (Apache-2.0), and data you imported."
)
_LAYOUT = dict(
    template="plotly_white",
    margin=dict(l=60, r=60, t=56, b=40),
    height=400,
    legend=dict(orientation="h", yanchor="top", y=-0.14, x=0),
    hovermode="x unified",
)


# Values are keyed by the hour's start; drawing them in the middle of the hour shows which hour they cover.
# A bar's width on a date axis is in ms: without one, a lone hour's bar is 1 ms wide and the axis fits it.
_HOUR_PERIOD = dict(xperiod=MS_PER_HOUR, xperiodalignment="middle")
_HOUR_BAR_WIDTH_MS = 0.9 * MS_PER_HOUR


@dataclass(frozen=True)
class NodeHours:
    """One node's hours for the hourly chart (all lists aligned with ``hours``)."""

    node: str
    hours: Sequence[datetime]
    emissions_g: Sequence[float]
    intensity_g_per_kwh: Sequence[float]
    fallback: Sequence[bool]
    source: Sequence[str]


def _source_note() -> dict[str, object]:
    return dict(
        text=ATTRIBUTION, showarrow=False, xref="paper", yref="paper", x=0, y=1.02, xanchor="left",
        yanchor="bottom", font=dict(size=9, color="#687086"),
    )


# An hourly chart of one or two hours still shows a few hours around them, in whole-hour ticks.
HOURLY_MIN_SPAN_MS = 4 * MS_PER_HOUR


def _hour_edges_ms(hours: Iterable[datetime]) -> list[float]:
    """The start and end of each hour, in epoch ms: what an hourly bar covers."""
    return [t for h in hours for t in (h.timestamp() * MS_PER_S, h.timestamp() * MS_PER_S + MS_PER_HOUR)]


def _epoch_ms(hours: Sequence[datetime]) -> dict[str, str]:
    return typed_array([h.timestamp() * MS_PER_S for h in hours])


def emissions_by_hour(series: Sequence[NodeHours]) -> Figure:
    """Stacked bars of emissions per node and UTC hour, with each node's grid intensity drawn over them.

    Hours whose intensity is not the zone's own hourly value (a fallback) get hollow markers, so a
    flat stretch of yearly figures is not mistaken for measured data. Built as a plain dict, like the run
    page's other charts: a fleet's day is 8 nodes × 25 hours of traces, and graph objects cost more than
    the rest of the section.
    """
    data: list[dict[str, Any]] = [
        {"type": "bar", "x": _epoch_ms(s.hours), "y": typed_array(s.emissions_g), "name": f"{s.node} emissions",
         "customdata": list(s.source), "hovertemplate": "%{y:,.3g} g CO₂e<extra>" + s.node + "</extra>",
         "width": _HOUR_BAR_WIDTH_MS, **_HOUR_PERIOD}
        for s in series
    ]
    data += [
        {"type": "scatter", "x": _epoch_ms(s.hours), "y": typed_array(s.intensity_g_per_kwh),
         "name": f"{s.node} intensity", "yaxis": "y2", "mode": "lines+markers", "line": {"width": 2},
         "marker": {"symbol": ["circle-open" if f else "circle" for f in s.fallback], "size": 8},
         "customdata": [("fallback: " if f else "") + src for f, src in zip(s.fallback, s.source, strict=True)],
         "hovertemplate": "%{y:,.0f} g/kWh (%{customdata})<extra>" + s.node + "</extra>", **_HOUR_PERIOD}
        for s in series
    ]
    return {"data": data, "layout": base_layout(
        title={"text": "Emissions by UTC hour, with the grid intensity behind them (hollow: fallback figure)"},
        barmode="stack", height=400, margin={"l": 60, "r": 60, "t": 56, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.14, "x": 0},
        xaxis=time_axis(_hour_edges_ms(h for s in series for h in s.hours), min_span_ms=HOURLY_MIN_SPAN_MS),
        yaxis={"title": {"text": "g CO₂e"}, "rangemode": "tozero"},
        yaxis2={"title": {"text": "g/kWh"}, "overlaying": "y", "side": "right", "rangemode": "tozero",
                "showgrid": False, "tickformat": ",.0f", "nticks": 6},
        annotations=[_source_note()],
    )}


def emissions_by_gpu(
    labels: Sequence[str], location_g: Sequence[float], market_g: Sequence[float], nodes: Sequence[str]
) -> Figure:
    """Location-based and market-based emissions per GPU, side by side."""
    data = [
        {"type": "bar", "x": list(labels), "y": typed_array(values), "name": method, "customdata": list(nodes),
         "hovertemplate": "%{x}: %{y:,.1f} g<extra>" + method + "</extra>"}
        for method, values in (("location-based", location_g), ("market-based", market_g))
    ]
    # The legend sits above the plot: below it, it would cover the rotated GPU names.
    return {"data": data, "layout": base_layout(
        title={"text": "Emissions per GPU: both accounting methods"}, barmode="group", height=400,
        hovermode="closest", yaxis={"title": {"text": "g CO₂e"}},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 1, "xanchor": "right"},
        xaxis={"tickangle": -30, "automargin": True},
    )}


def advice_by_start(
    starts: Mapping[str, tuple[Sequence[datetime], Sequence[float]]], baseline_g: float, *,
    baseline_label: str = "now, current region",
) -> go.Figure:
    """Predicted emissions against start time for the best regions, with the baseline (``baseline_label``)."""
    figure = go.Figure()
    for label, (times, emissions_g) in starts.items():
        figure.add_trace(go.Scatter(x=list(times), y=[g / G_PER_KG for g in emissions_g], name=label, mode="lines",
                                    line=dict(shape="hv"),
                                    hovertemplate="%{y:,.2f} kg<extra>" + label + "</extra>"))
    highest_kg = max((g / G_PER_KG for _, emissions_g in starts.values() for g in emissions_g), default=0.0)
    if baseline_g / G_PER_KG <= 2 * highest_kg:
        figure.add_hline(y=baseline_g / G_PER_KG, line_dash="dot", annotation_text=baseline_label,
                         annotation_position="top left")
    else:
        # Far above the alternatives, a line for "now" would squash them into one: say it in words instead.
        figure.add_annotation(text=f"Baseline, {baseline_label}: {baseline_g / G_PER_KG:,.2f} kg CO₂e (off the scale)",
                              xref="paper", yref="paper", x=0, y=1.0, xanchor="left", yanchor="bottom",
                              showarrow=False, font=dict(size=12, color="#a61e1e"))
    starts_ms = [t.timestamp() * MS_PER_S for times, _ in starts.values() for t in times]
    figure.update_layout(title="Predicted emissions by start time (UTC)", yaxis=dict(title="kg CO₂e",
                         rangemode="tozero"), xaxis=time_axis(starts_ms, min_span_ms=HOURLY_MIN_SPAN_MS), **_LAYOUT)
    return figure

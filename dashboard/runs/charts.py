"""The run and GPU pages' charts as pure functions: plain data in, a Plotly figure out. No queries here.

The figures are built as plain dicts in plotly.js's schema rather than through
``plotly.graph_objects``: validating 64 traces of a fleet run through graph objects cost more than the
database did (about 150 ms of a 300 ms budget). Arrays go out as plotly.js typed arrays
(:func:`dashboard.web.figures.typed_array`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dashboard.runs.downsample import Buckets
from dashboard.web.figures import Figure, base_layout, time_axis, typed_array
from planner.units import J_PER_KWH, MS_PER_MINUTE, MS_PER_S, energy_unit

# Time charts: the legend goes under the date line Plotly writes below the first tick.
_TIME_LEGEND = {"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0}
_TIME_MARGIN = {"l": 60, "r": 20, "t": 56, "b": 72}
# Above this many lines a legend and a unified hover list stop being readable: hover names one line.
MAX_LEGEND_TRACES = 16


def _time_layout(title: str, unit: str, *times_ms: np.ndarray, **overrides: Any) -> dict[str, Any]:
    """The layout of a chart over time; ``times_ms``: the x values of its traces (for a readable axis)."""
    spans = [(float(t.min()), float(t.max())) for t in times_ms if len(t)]
    layout: dict[str, Any] = {"title": {"text": title}, "yaxis": {"title": {"text": unit}},
                              "xaxis": time_axis([t for span in spans for t in span]),
                              "legend": _TIME_LEGEND, "margin": _TIME_MARGIN}
    return base_layout(**{**layout, **overrides})


def _times(t_ms: np.ndarray) -> dict[str, str]:
    # Epoch milliseconds on a date axis: compact typed arrays, where datetime values would become one ISO
    # string each (64 GPUs × 200 buckets is 12,800 strings per poll).
    return typed_array(t_ms, "f8")


def _finite(values: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def _title(text: str) -> dict[str, str]:
    return {"text": text}


# Frequency plans in force (the plan client's ``plan`` events): alternating bands under the lines.
_PLAN_BAND_COLOURS = ("#4c78a8", "#f58518")


def plan_bands(bands: Sequence[tuple[float, float, str]]) -> dict[str, list[dict[str, Any]]]:
    """Layout shapes and labels marking each ``(from_ms, to_ms, label)`` plan interval on a time chart."""
    shapes, annotations = [], []
    for k, (from_ms, to_ms, label) in enumerate(bands):
        colour = _PLAN_BAND_COLOURS[k % len(_PLAN_BAND_COLOURS)]
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": from_ms, "x1": to_ms, "y0": 0, "y1": 1,
                       "fillcolor": colour, "opacity": 0.08, "layer": "below", "line": {"width": 0}})
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": from_ms, "x1": from_ms, "y0": 0, "y1": 1,
                       "line": {"color": colour, "width": 1, "dash": "dot"}})
        annotations.append({"xref": "x", "yref": "paper", "x": from_ms, "y": 1, "xanchor": "left", "yanchor": "bottom",
                            "text": label, "showarrow": False, "font": {"size": 10, "color": colour}})
    return {"shapes": shapes, "annotations": annotations} if bands else {}


def power_over_time(
    traces: Mapping[str, Buckets], *, power_field: str, plans: Sequence[tuple[float, float, str]] = (),
    from_windows: bool = False,
) -> Figure:
    """One line per GPU: the bucket mean of its power; hover shows the bucket's min and max. ``plans``:
    the frequency plans in force, ``(from_ms, to_ms, label)``, drawn as bands (:func:`plan_bands`).

    ``from_windows``: the buckets hold agent windows' mean power (energy over time), not readings.
    """
    data = []
    for label, buckets in traces.items():
        trace: dict[str, Any] = {
            "type": "scattergl", "mode": "lines", "name": label,
            "x": _times(buckets.t_ms), "y": typed_array(_finite(buckets.mean), "f4"),
            "hovertemplate": "%{y:.0f} W (min %{customdata[0]:.0f}, max %{customdata[1]:.0f})",
        }
        if buckets.mean.size:
            trace["customdata"] = typed_array(np.stack([_finite(buckets.low), _finite(buckets.high)], axis=-1), "f4")
        data.append(trace)
    many = len(data) > MAX_LEGEND_TRACES
    if many:
        for trace in data:
            trace["hovertemplate"] = "%{fullData.name}: " + trace["hovertemplate"] + "<extra></extra>"
    return {"data": data, "layout": _time_layout(
        ("Power per GPU (each agent window's energy over its time; bucket means)" if from_windows
         else f"Power per GPU ({power_field} NVML power, bucket means)")
        + (f": {len(data)} GPUs, hover a line for its name" if many else ""), "W",
        *(np.asarray(b.t_ms) for b in traces.values()),
        **({"showlegend": False, "hovermode": "closest", "margin": {**_TIME_MARGIN, "b": 40}} if many else {}),
        **plan_bands(plans),
    )}


def _energy_unit(*energies_j: Any) -> tuple[float, str]:
    """The energy unit that fits the largest of these values (J): mWh for seconds, kWh or MWh for days."""
    largest = max((float(np.max(np.abs(e))) for e in energies_j if np.size(e)), default=J_PER_KWH)
    return energy_unit(largest)


def _bars_layout(title: str, unit: str = "kWh", **extra: Any) -> dict[str, Any]:
    return base_layout(title=_title(title), yaxis={"title": {"text": unit}}, hovermode="closest",
                   legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 1, "xanchor": "right"}, **extra)


def energy_per_gpu(
    labels: Sequence[str], energy_j: Sequence[float], nodes: Sequence[str], *, title: str = "Energy per GPU"
) -> Figure:
    data = []
    per_unit, unit = _energy_unit(list(energy_j))
    for node in dict.fromkeys(nodes):
        picked = [i for i, n in enumerate(nodes) if n == node]
        data.append({
            "type": "bar", "name": node,
            "x": [labels[i] for i in picked],
            "y": typed_array([energy_j[i] / per_unit for i in picked]),
            "hovertemplate": "%{x}: %{y:.3g} " + unit + "<extra></extra>",
        })
    return {"data": data, "layout": _bars_layout(title, unit, xaxis={"tickangle": -30, "automargin": True})}


def node_breakdown(
    energy_by_node_gpu: Mapping[str, Mapping[str, float]], *, title: str = "Energy per node, by GPU"
) -> Figure:
    """Stacked bars: each node's energy, split by its GPUs."""
    nodes = list(energy_by_node_gpu)
    gpu_labels = sorted({gpu for gpus in energy_by_node_gpu.values() for gpu in gpus})
    per_unit, unit = _energy_unit([sum(gpus.values()) for gpus in energy_by_node_gpu.values()])
    data = [
        {
            "type": "bar", "name": gpu, "x": nodes,
            "y": typed_array([energy_by_node_gpu[node].get(gpu, 0.0) / per_unit for node in nodes]),
            "hovertemplate": "%{x} " + gpu + ": %{y:.3g} " + unit + "<extra></extra>",
        }
        for gpu in gpu_labels
    ]
    return {"data": data, "layout": _bars_layout(title, unit, barmode="stack")}


def cumulative_energy(
    minutes_ms: np.ndarray, cumulative_j_by_group: Mapping[str, np.ndarray], *, title: str = "Cumulative energy"
) -> Figure:
    """Stacked areas of cumulative energy per group (node); the top edge is the run's running total."""
    groups = [np.asarray(c) for c in cumulative_j_by_group.values()]
    per_unit, unit = _energy_unit(sum(groups) if groups else np.zeros(0))
    data = [
        {
            "type": "scatter", "mode": "lines", "name": group, "stackgroup": "energy",
            "x": _times(minutes_ms), "y": typed_array(np.asarray(cumulative_j) / per_unit),
            "hovertemplate": "%{y:.3g} " + unit,
        }
        for group, cumulative_j in cumulative_j_by_group.items()
    ]
    return {"data": data, "layout": _time_layout(title, unit, np.asarray(minutes_ms))}


def per_bucket(width_ms: int) -> str:
    """What one bucket of a chart spans, for its legend: "per minute", "per 5 min", "per 1.5 s"."""
    if width_ms == MS_PER_MINUTE:
        return "per minute"
    if width_ms > MS_PER_MINUTE and width_ms % MS_PER_MINUTE == 0:
        return f"per {width_ms // MS_PER_MINUTE} min"
    return f"per {width_ms / MS_PER_S:.2g} s"


def metric_over_time(buckets: Buckets, *, title: str, unit: str, width_ms: int, band: bool = True) -> Figure:
    """One GPU's metric: bucket mean as a line, with the bucket's min–max band behind it; the legend says which."""
    x = _times(buckets.t_ms)
    per = per_bucket(width_ms)
    data: list[dict[str, Any]] = []
    if band and buckets.mean.size:
        data.append({"type": "scatter", "mode": "lines", "x": x, "y": typed_array(_finite(buckets.high), "f4"),
                     "line": {"width": 0}, "name": "max", "hoverinfo": "skip", "showlegend": False})
        data.append({"type": "scatter", "mode": "lines", "x": x, "y": typed_array(_finite(buckets.low), "f4"),
                     "line": {"width": 0}, "name": f"min–max {per}", "fill": "tonexty",
                     "fillcolor": "rgba(99,110,250,0.18)", "hoverinfo": "skip"})
    data.append({"type": "scatter", "mode": "lines", "x": x, "y": typed_array(_finite(buckets.mean), "f4"),
                 "name": f"mean {per}", "hovertemplate": "%{y:.1f} " + unit, "line": {"color": "#636efa"}})
    return {"data": data, "layout": _time_layout(title, unit, np.asarray(buckets.t_ms), showlegend=True)}


def cumulative_gpu_energy(
    minutes_ms: np.ndarray, cumulative_j: np.ndarray, *, title: str = "Cumulative energy"
) -> Figure:
    per_unit, unit = _energy_unit(np.asarray(cumulative_j))
    data = [{"type": "scatter", "mode": "lines", "name": "energy", "x": _times(minutes_ms),
             "y": typed_array(np.asarray(cumulative_j) / per_unit), "hovertemplate": "%{y:.3g} " + unit}]
    return {"data": data, "layout": _time_layout(title, unit, np.asarray(minutes_ms))}

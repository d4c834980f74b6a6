"""Charts as pure functions: plain data in, a Plotly figure out. No queries here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from django.utils.safestring import SafeString, mark_safe

from dashboard.downsample import Buckets

J_PER_KWH = 3.6e6
_LAYOUT = dict(
    template="plotly_white",
    margin=dict(l=60, r=20, t=56, b=40),
    height=380,
    legend=dict(orientation="h", yanchor="top", y=-0.12, x=0),
    hovermode="x unified",
    # Live pages redraw with Plotly.react: an unchanged uirevision keeps the user's zoom and hidden traces.
    uirevision="wattwise",
)


def figure_json(figure: go.Figure) -> SafeString:
    """A figure as JSON that can sit inside a <script> element (escaped like Django's json_script)."""
    text = pio.to_json(figure, validate=False)
    return mark_safe(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _times(t_ms: np.ndarray) -> np.ndarray:
    # Epoch milliseconds on a date axis: Plotly ships numbers as compact typed arrays, where datetime64
    # values would become one ISO string each (64 GPUs × 200 buckets is 12,800 strings per poll).
    return np.asarray(t_ms, dtype=np.float64)


def _date_axis(figure: go.Figure) -> go.Figure:
    figure.update_xaxes(type="date")
    return figure


def power_over_time(traces: Mapping[str, Buckets], *, power_field: str) -> go.Figure:
    """One line per GPU: the bucket mean of its power; hover shows the bucket's min and max."""
    figure = go.Figure()
    for label, buckets in traces.items():
        figure.add_trace(
            go.Scattergl(
                x=_times(buckets.t_ms),
                y=buckets.mean,
                mode="lines",
                name=label,
                customdata=np.stack([buckets.low, buckets.high], axis=-1) if buckets.mean.size else None,
                hovertemplate="%{y:.0f} W (min %{customdata[0]:.0f}, max %{customdata[1]:.0f})",
            )
        )
    figure.update_layout(title=f"Power per GPU ({power_field} NVML power, bucket means)", yaxis_title="W", **_LAYOUT)
    return _date_axis(figure)


def energy_per_gpu(
    labels: Sequence[str], energy_j: Sequence[float], nodes: Sequence[str], *, title: str = "Energy per GPU"
) -> go.Figure:
    figure = go.Figure()
    for node in dict.fromkeys(nodes):
        picked = [i for i, n in enumerate(nodes) if n == node]
        figure.add_trace(
            go.Bar(
                x=[labels[i] for i in picked],
                y=[energy_j[i] / J_PER_KWH for i in picked],
                name=node,
                hovertemplate="%{x}: %{y:.4f} kWh<extra></extra>",
            )
        )
    layout = {**_LAYOUT, "hovermode": "closest", "legend": dict(orientation="h", yanchor="bottom", y=1.0, x=1,
                                                                xanchor="right")}
    figure.update_layout(title=title, yaxis_title="kWh", **layout)
    figure.update_xaxes(tickangle=-30, automargin=True)
    return figure


def node_breakdown(
    energy_by_node_gpu: Mapping[str, Mapping[str, float]], *, title: str = "Energy per node, by GPU"
) -> go.Figure:
    """Stacked bars: each node's energy, split by its GPUs."""
    figure = go.Figure()
    nodes = list(energy_by_node_gpu)
    gpu_labels = sorted({gpu for gpus in energy_by_node_gpu.values() for gpu in gpus})
    for gpu in gpu_labels:
        figure.add_trace(
            go.Bar(
                x=nodes,
                y=[energy_by_node_gpu[node].get(gpu, 0.0) / J_PER_KWH for node in nodes],
                name=gpu,
                hovertemplate="%{x} " + gpu + ": %{y:.4f} kWh<extra></extra>",
            )
        )
    layout = {**_LAYOUT, "hovermode": "closest", "legend": dict(orientation="h", yanchor="bottom", y=1.0, x=1,
                                                                xanchor="right")}
    figure.update_layout(title=title, yaxis_title="kWh", barmode="stack", **layout)
    return figure


def cumulative_energy(
    minutes_ms: np.ndarray, cumulative_j_by_group: Mapping[str, np.ndarray], *, title: str = "Cumulative energy"
) -> go.Figure:
    """Stacked areas of cumulative energy per group (node); the top edge is the run's running total."""
    figure = go.Figure()
    for group, cumulative_j in cumulative_j_by_group.items():
        figure.add_trace(
            go.Scatter(
                x=_times(minutes_ms),
                y=np.asarray(cumulative_j) / J_PER_KWH,
                name=group,
                mode="lines",
                stackgroup="energy",
                hovertemplate="%{y:.3f} kWh",
            )
        )
    figure.update_layout(title=title, yaxis_title="kWh", **_LAYOUT)
    return _date_axis(figure)


def metric_over_time(buckets: Buckets, *, title: str, unit: str, band: bool = True) -> go.Figure:
    """One GPU's metric: bucket mean as a line, with the min–max band behind it."""
    figure = go.Figure()
    x = _times(buckets.t_ms)
    if band and buckets.mean.size:
        figure.add_trace(go.Scatter(x=x, y=buckets.high, mode="lines", line=dict(width=0), name="max",
                                    hoverinfo="skip", showlegend=False))
        figure.add_trace(go.Scatter(x=x, y=buckets.low, mode="lines", line=dict(width=0), name="min–max",
                                    fill="tonexty", fillcolor="rgba(99,110,250,0.18)", hoverinfo="skip"))
    figure.add_trace(go.Scatter(x=x, y=buckets.mean, mode="lines", name="mean",
                                hovertemplate="%{y:.1f} " + unit, line=dict(color="#636efa")))
    figure.update_layout(title=title, yaxis_title=unit, **_LAYOUT)
    return _date_axis(figure)


def cumulative_gpu_energy(
    minutes_ms: np.ndarray, cumulative_j: np.ndarray, *, title: str = "Cumulative energy"
) -> go.Figure:
    figure = go.Figure(
        go.Scatter(x=_times(minutes_ms), y=np.asarray(cumulative_j) / J_PER_KWH, mode="lines", name="energy",
                   hovertemplate="%{y:.4f} kWh")
    )
    figure.update_layout(title=title, yaxis_title="kWh", **_LAYOUT)
    return _date_axis(figure)

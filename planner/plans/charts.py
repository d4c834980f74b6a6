"""Planner charts as pure functions: plain data in, a Plotly figure out. No queries here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
from plotly.colors import get_colorscale, sample_colorscale

PLANNED = "#3b5bdb"
REALISED = "#e8590c"
BASELINE = "#1d2330"
CHOSEN = "#2b8a3e"
STRAGGLER = "#9c36b5"
CRITICAL = "#e03131"
# Written out as stops, so the bars (coloured here) and the colour bar (drawn by plotly.js) use the same scale.
FREQ_SCALE = get_colorscale("Viridis")

_LAYOUT = dict(
    template="plotly_white",
    margin=dict(l=70, r=24, t=56, b=48),
    legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right"),
    hovermode="closest",
)


@dataclass(frozen=True)
class Mark:
    """A labelled point on the frontier chart (the fastest plan, a straggler's choice, ...)."""

    label: str
    time_s: float
    energy_j: float
    text: str
    color: str = CHOSEN
    ax: int = 60
    ay: int = -60


def frontier_chart(
    *,
    index: Sequence[int],
    planned_time_s: npt.ArrayLike,
    planned_energy_j: npt.ArrayLike,
    realised_time_s: npt.ArrayLike,
    realised_energy_j: npt.ArrayLike,
    energy_change: npt.ArrayLike,
    time_change: npt.ArrayLike,
    stage_mean_mhz: npt.ArrayLike,
    baseline_time_s: float,
    baseline_energy_j: float,
    marks: Sequence[Mark] = (),
    straggler_time_s: float | None = None,
    title: str = "Iteration time–energy frontier",
    max_hover_stages: int = 16,
) -> go.Figure:
    """Energy against iteration time: planned and realised side by side, all at max frequency marked.

    Hovering a point shows its plan (mean planned frequency of every stage) and its figures against
    all-max; each point's ``customdata`` starts with its frontier index, so a click can open its plan.
    """
    means = np.asarray(stage_mean_mhz, dtype=float).reshape(len(index), -1)
    shown = min(means.shape[1], max_hover_stages)
    custom = np.column_stack([
        np.asarray(index, dtype=float), np.asarray(planned_time_s, dtype=float), np.asarray(planned_energy_j, dtype=float),
        np.asarray(realised_time_s, dtype=float), np.asarray(realised_energy_j, dtype=float),
        100.0 * np.asarray(energy_change, dtype=float), 100.0 * np.asarray(time_change, dtype=float),
        means[:, :shown],
    ]).astype(np.float32)
    stage_lines = []
    for first in range(0, shown, 4):
        stage_lines.append(" · ".join(f"s{s} %{{customdata[{7 + s}]:.0f}}" for s in range(first, min(shown, first + 4))))
    more = f"<br>… and {means.shape[1] - shown} more stages" if means.shape[1] > shown else ""
    hover = (
        "<b>plan %{customdata[0]:.0f}</b> · click to open<br>"
        "planned %{customdata[1]:.4f} s · %{customdata[2]:,.1f} J<br>"
        "realised %{customdata[3]:.4f} s · %{customdata[4]:,.1f} J<br>"
        "vs all-max: %{customdata[5]:+.1f} % energy, %{customdata[6]:+.2f} % time<br>"
        "mean MHz per stage:<br>" + "<br>".join(stage_lines) + more + "<extra></extra>"
    )
    figure = go.Figure()
    figure.add_trace(go.Scatter(
        x=realised_time_s, y=realised_energy_j, mode="markers", name="realised (profiled times and energies)",
        marker=dict(size=6, color=REALISED, opacity=0.55, symbol="circle-open"),
        customdata=np.asarray(index, dtype=np.int32).reshape(-1, 1),
        hovertemplate="<b>plan %{customdata[0]}</b> realised · click to open<br>%{x:.4f} s · %{y:,.1f} J<extra></extra>",
    ))
    figure.add_trace(go.Scatter(
        x=planned_time_s, y=planned_energy_j, mode="lines+markers", name="planned (solver's model)",
        line=dict(color=PLANNED, width=2), marker=dict(size=3, color=PLANNED),
        customdata=custom, hovertemplate=hover,
    ))
    figure.add_trace(go.Scatter(
        x=[baseline_time_s], y=[baseline_energy_j], mode="markers", name="all at max frequency",
        marker=dict(size=16, color=BASELINE, symbol="star"),
        hovertemplate="<b>all at max frequency</b><br>%{x:.4f} s · %{y:,.1f} J<extra></extra>",
    ))
    annotations = [dict(
        x=baseline_time_s, y=baseline_energy_j,
        text=f"<b>all at max frequency</b><br>{baseline_time_s:.4f} s · {baseline_energy_j:,.0f} J",
        showarrow=True, arrowhead=0, ax=24, ay=0, xanchor="left", font=dict(size=12, color=BASELINE), align="left",
        bgcolor="rgba(255,255,255,0.85)",
    )]
    for mark in marks:
        figure.add_trace(go.Scatter(
            x=[mark.time_s], y=[mark.energy_j], mode="markers", name=mark.label,
            marker=dict(size=13, color=mark.color, symbol="diamond", line=dict(width=1.5, color="#fff")),
            hovertemplate=f"<b>{mark.label}</b><br>%{{x:.4f}} s · %{{y:,.1f}} J<extra></extra>",
        ))
        annotations.append(dict(
            x=mark.time_s, y=mark.energy_j, text=mark.text, showarrow=True, arrowhead=2, ax=mark.ax, ay=mark.ay,
            font=dict(size=12, color=mark.color), bgcolor="rgba(255,255,255,0.92)", bordercolor=mark.color,
            borderwidth=1, borderpad=4, align="left",
        ))
    if straggler_time_s is not None:
        figure.add_vline(x=straggler_time_s, line=dict(color=STRAGGLER, dash="dash", width=1.5))
        annotations.append(dict(
            x=straggler_time_s, y=0.99, yref="paper", text=f"T′ = {straggler_time_s:.4g} s", showarrow=False,
            xanchor="left", yanchor="top", xshift=4, font=dict(size=12, color=STRAGGLER),
        ))
    figure.update_layout(
        title=title, xaxis_title="Iteration time (s)", yaxis_title="Energy per iteration (J, blocking included)",
        height=560, annotations=annotations,
        **{**_LAYOUT, "legend": dict(orientation="h", yanchor="top", y=-0.14, x=0), "margin": dict(l=70, r=24, t=56, b=40)},
    )
    return figure


@dataclass(frozen=True)
class Bar:
    """One computation of the timeline."""

    stage: int
    instruction: str
    microbatch: int
    freq_mhz: int
    start_s: float
    end_s: float
    critical: bool


def frequency_colors(freqs_mhz: Sequence[int], lo: int, hi: int) -> list[str]:
    """Each frequency's colour on FREQ_SCALE between ``lo`` and ``hi`` MHz."""
    span = hi - lo if hi > lo else 1
    distinct = sorted(set(freqs_mhz))  # a profile has a few dozen frequencies; a plan up to 20,000 bars
    colors = sample_colorscale(FREQ_SCALE, [min(max((f - lo) / span, 0.0), 1.0) for f in distinct])
    by_freq = dict(zip(distinct, colors, strict=True))
    return [by_freq[f] for f in freqs_mhz]


def timeline_chart(
    bars: Sequence[Bar],
    *,
    num_stages: int,
    freq_range_mhz: tuple[int, int],
    title: str = "One iteration, per stage",
) -> go.Figure:
    """Per-stage timeline of one iteration: bars coloured by frequency, critical computations outlined."""
    lo, hi = freq_range_mhz
    labels = [f"stage {b.stage}" for b in bars]
    durations_ms = [1000.0 * (b.end_s - b.start_s) for b in bars]
    short = [("F" if b.instruction == "forward" else "B") + str(b.microbatch) for b in bars]
    custom = [
        [b.instruction, b.microbatch, b.freq_mhz, 1000.0 * b.start_s, 1000.0 * b.end_s, d,
         "on the critical path" if b.critical else "has slack"]
        for b, d in zip(bars, durations_ms, strict=True)
    ]
    figure = go.Figure()
    figure.add_trace(go.Bar(
        orientation="h",
        y=labels,
        x=[b.end_s - b.start_s for b in bars],
        base=[b.start_s for b in bars],
        text=short,
        textposition="inside",
        insidetextanchor="middle",
        textfont=dict(size=10),
        constraintext="both",
        # Colours as colour strings, not frequencies on a colour scale: plotly.js picks each label's contrasting
        # colour, and the hover box's, from the bar's colour, and warns once per bar about a number there.
        marker=dict(
            color=frequency_colors([b.freq_mhz for b in bars], lo, hi),
            line=dict(color=[CRITICAL if b.critical else "rgba(255,255,255,0.9)" for b in bars],
                      width=[2.5 if b.critical else 0.6 for b in bars]),
        ),
        customdata=custom,
        hovertemplate=(
            "%{y}: <b>%{customdata[0]} of microbatch %{customdata[1]}</b><br>%{customdata[2]} MHz<br>"
            "%{customdata[3]:.1f} → %{customdata[4]:.1f} ms (%{customdata[5]:.1f} ms)<br>%{customdata[6]}<extra></extra>"
        ),
        name="computations",
        showlegend=False,
    ))
    # A legend entry for the outline (bars are one trace, coloured by frequency).
    figure.add_trace(go.Scatter(
        x=[None], y=[None], mode="markers", name="critical path (red outline)",
        marker=dict(symbol="square-open", size=12, color=CRITICAL, line=dict(width=2.5)),
    ))
    # The colour bar, from a trace that draws nothing.
    figure.add_trace(go.Scatter(
        x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
        marker=dict(color=[lo, hi], colorscale=FREQ_SCALE, cmin=lo, cmax=hi if hi > lo else lo + 1, showscale=True,
                    colorbar=dict(title=dict(text="MHz"), thickness=14)),
    ))
    end_s = max((b.end_s for b in bars), default=0.0)
    order = [f"stage {s}" for s in range(num_stages)]
    figure.update_yaxes(categoryorder="array", categoryarray=order[::-1], title=None)
    figure.update_xaxes(title="Time in the iteration (s)", range=[0, end_s * 1.01 if end_s > 0 else 1])
    figure.update_layout(
        title=title, barmode="overlay", bargap=0.25, height=max(320, 70 + 42 * num_stages), **_LAYOUT,
    )
    return figure


@dataclass(frozen=True)
class ProfileSeries:
    """One instruction of one stage, or of several stages profiled identically: time and energy at each frequency."""

    stages: Sequence[int]
    instruction: str
    freq_mhz: Sequence[int]
    time_s: Sequence[float]
    energy_j: Sequence[float]


def stages_label(stages: Sequence[int]) -> str:
    """"stage 3"; several identical stages: "stages 0–6 (identical)", runs of consecutive ones as ranges."""
    if len(stages) == 1:
        return f"stage {stages[0]}"
    runs: list[list[int]] = []
    for stage in sorted(stages):
        if runs and stage == runs[-1][-1] + 1:
            runs[-1].append(stage)
        else:
            runs.append([stage])
    text = ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)
    return f"stages {text} (identical)"


def profile_chart(series: Sequence[ProfileSeries], *, title: str = "The profile, per stage") -> go.Figure:
    """Energy against time of every (stage, instruction), one colour per stage, backward dashed; stages profiled
    identically share one line (they would hide each other), which the legend names."""
    palette = ["#3b5bdb", "#e8590c", "#2b8a3e", "#ae3ec9", "#1098ad", "#f08c00", "#c2255c", "#5c940d"]
    figure = go.Figure()
    for s in series:
        color = palette[s.stages[0] % len(palette)]
        label = stages_label(s.stages)
        figure.add_trace(go.Scatter(
            x=np.asarray(s.time_s) * 1000.0, y=s.energy_j, mode="lines+markers",
            name=label, legendgroup=label, showlegend=s.instruction == "forward",
            line=dict(color=color, width=1.5, dash="solid" if s.instruction == "forward" else "dot"),
            marker=dict(size=4, color=color), customdata=list(s.freq_mhz),
            hovertemplate=f"{label} {s.instruction}<br>%{{customdata}} MHz: %{{x:.2f}} ms · %{{y:.2f}} J<extra></extra>",
        ))
    figure.update_layout(
        title=dict(text=title + "<br><sup>energy against time at each frequency; forward solid, backward dotted</sup>"),
        xaxis_title="Time of one microbatch (ms)",
        yaxis_title="Energy (J)", height=420, **{**_LAYOUT, "legend": dict(orientation="v", x=1.02, y=1)},
    )
    return figure

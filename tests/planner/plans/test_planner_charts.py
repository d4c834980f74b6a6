"""Planner charts are pure functions of plain data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from planner import perseus
from planner.plans import charts, results

GPT3_SAMPLE = Path(__file__).parents[3] / "planner/plans/samples/gpt3-175b+a100_sxm_bf16.csv"


def test_the_frontier_chart_keeps_each_points_index_for_its_plan():
    figure = charts.frontier_chart(
        index=[0, 1, 2], planned_time_s=[3.0, 2.9, 2.8], planned_energy_j=[100.0, 105.0, 110.0],
        realised_time_s=[2.99, 2.89, 2.81], realised_energy_j=[101.0, 104.0, 111.0],
        energy_change=[-0.3, -0.25, -0.2], time_change=[0.1, 0.05, 0.01], stage_mean_mhz=np.full((3, 2), 1200.0),
        baseline_time_s=2.78, baseline_energy_j=140.0,
        marks=[charts.Mark("fastest plan (realised)", 2.81, 111.0, "fastest")], straggler_time_s=2.95,
    )
    realised, planned, all_max, fastest = figure.data
    assert list(planned.customdata[:, 0]) == [0, 1, 2] and list(realised.customdata[:, 0]) == [0, 1, 2]
    assert "s0 %{customdata[7]:.0f} · s1 %{customdata[8]:.0f}" in planned.hovertemplate
    assert (all_max.x[0], all_max.y[0]) == (2.78, 140.0) and fastest.name == "fastest plan (realised)"
    assert any(shape.x0 == 2.95 for shape in figure.layout.shapes)  # T′


def test_the_timeline_draws_one_bar_per_computation_from_its_start():
    bars = [charts.Bar(0, "forward", 0, 1410, 0.0, 0.05, True), charts.Bar(1, "forward", 0, 1200, 0.05, 0.11, False)]
    figure = charts.timeline_chart(bars, num_stages=2, freq_range_mhz=(855, 1410))
    trace = figure.data[0]
    assert list(trace.base) == [0.0, 0.05] and np.allclose(trace.x, [0.05, 0.06])
    assert list(trace.y) == ["stage 0", "stage 1"] and list(trace.text) == ["F0", "F0"]
    # Colour strings (plotly.js warns about numbers where it derives label colours), and the scale's ends.
    assert list(trace.marker.color) == charts.frequency_colors([1410, 1200], 855, 1410)
    assert charts.frequency_colors([855, 1410], 855, 1410) == ["rgb(68, 1, 84)", "rgb(253, 231, 37)"]
    scale = next(t for t in figure.data if t.marker.showscale)
    assert (scale.marker.cmin, scale.marker.cmax) == (855, 1410) and scale.marker.colorbar.title.text == "MHz"
    assert list(trace.marker.line.color) == [charts.CRITICAL, "rgba(255,255,255,0.9)"]


def test_the_profile_chart_has_a_line_per_stage_and_instruction():
    series = [charts.ProfileSeries((s,), i, [1410, 1200], [0.05, 0.06], [20.0, 18.0])
              for s in range(3) for i in ("forward", "backward")]
    figure = charts.profile_chart(series)
    assert len(figure.data) == 6 and [t.showlegend for t in figure.data].count(True) == 3


def test_identical_stages_share_one_line_that_the_legend_names():
    profile = perseus.parse_profile(GPT3_SAMPLE.read_text())  # stages 0–6 profiled identically, stage 7 not
    figure = charts.profile_chart(results.profile_series(profile))
    assert [t.name for t in figure.data if t.showlegend] == ["stages 0–6 (identical)", "stage 7"]
    assert len(figure.data) == 4  # forward and backward of each


def test_a_label_names_runs_of_consecutive_stages_as_ranges():
    assert charts.stages_label([4]) == "stage 4"
    assert charts.stages_label([0, 1]) == "stages 0, 1 (identical)"
    assert charts.stages_label([5, 0, 1, 2, 3, 7, 8]) == "stages 0–3, 5, 7, 8 (identical)"

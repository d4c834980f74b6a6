"""Chart builders: plain data in, plotly.js figures out, readable at any GPU count."""

from __future__ import annotations

import json

import numpy as np

from dashboard.runs import charts
from dashboard.runs.downsample import Buckets
from dashboard.web.figures import figure_json


def buckets(n: int) -> Buckets:
    t = np.arange(n, dtype=np.int64) * 60_000 + 1_795_000_000_000
    power = np.linspace(300, 600, n)
    return Buckets(t, power, power - 10, power + 10)


def test_a_few_gpus_get_a_legend_and_a_unified_hover():
    figure = charts.power_over_time({f"n/gpu{i}": buckets(5) for i in range(8)}, power_field="instant")
    assert figure["layout"]["hovermode"] == "x unified"
    assert figure["layout"].get("showlegend", True)


def test_a_fleet_of_gpus_hovers_one_named_line_instead_of_a_legend_nobody_can_read():
    figure = charts.power_over_time({f"n/gpu{i}": buckets(5) for i in range(64)}, power_field="instant")
    layout = figure["layout"]
    assert layout["showlegend"] is False and layout["hovermode"] == "closest"
    assert "64 GPUs" in layout["title"]["text"]
    assert all(trace["hovertemplate"].startswith("%{fullData.name}") for trace in figure["data"])


def test_figures_serialise_arrays_as_typed_arrays_that_round_trip():
    figure = charts.cumulative_gpu_energy(np.array([0, 60_000]), np.array([0.0, 3.6e6]))
    payload = json.loads(str(figure_json(figure)))
    y = payload["data"][0]["y"]
    assert y["dtype"] == "f8"
    decoded = np.frombuffer(__import__("base64").b64decode(y["bdata"]), dtype="<f8")
    assert list(decoded) == [0.0, 1.0]  # kWh
    assert payload["layout"]["xaxis"]["type"] == "date"


def test_figure_json_is_safe_inside_a_script_element():
    figure = charts.energy_per_gpu(["</script><b>"], [1.0], ["node"])
    assert "</script>" not in str(figure_json(figure))

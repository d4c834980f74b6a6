"""Figure helpers every app's charts share: the base layout, plotly.js typed arrays, and figure JSON that
can sit inside a page's ``<script>``.

Figures are plain dicts in plotly.js's schema, with arrays as plotly.js typed arrays (base64), as
plotly.py itself writes them; ``figure_json`` also takes a ``go.Figure`` for charts built that way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from django.utils.safestring import SafeString, mark_safe

from planner.units import MS_PER_S

Figure = dict[str, Any]


@cache
def _template() -> dict[str, Any]:
    return pio.templates["plotly_white"].to_plotly_json()


def base_layout(**overrides: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "template": _template(),
        "margin": {"l": 60, "r": 20, "t": 56, "b": 40},
        "height": 380,
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.12, "x": 0},
        "hovermode": "x unified",
        # Live pages redraw with Plotly.react: an unchanged uirevision keeps the user's zoom and hidden traces.
        "uirevision": "wattwise",
    }
    layout.update(overrides)
    return layout


# Wide enough for whole-second ticks, narrow enough that a run of a few seconds fills its chart.
MIN_TIME_SPAN_MS = 10 * MS_PER_S


def time_axis(times_ms: Iterable[float] = (), *, min_span_ms: float = MIN_TIME_SPAN_MS, **overrides: Any) -> dict[str, Any]:
    """A date x axis for data at ``times_ms`` (epoch ms) whose ticks stay readable.

    Plotly fits a date axis to its data: one point, or points a few ms apart, get ticks at fractions of a
    millisecond ("15:29:59.9996 … 15:30:00.0004"). A span shorter than ``min_span_ms`` is widened around
    its middle instead; longer ones keep Plotly's own range and ticks. Every time chart builds its x axis
    here.
    """
    axis: dict[str, Any] = {"type": "date", "hoverformat": "%Y-%m-%d %H:%M:%S", "autorange": True}
    finite = [float(t) for t in times_ms if np.isfinite(t)]
    if finite and max(finite) - min(finite) < min_span_ms:
        middle = (max(finite) + min(finite)) / 2
        axis["range"] = [_plotly_date(middle - min_span_ms / 2), _plotly_date(middle + min_span_ms / 2)]
        axis["autorange"] = False
    axis.update(overrides)
    return axis


def _plotly_date(epoch_ms: float) -> str:
    return datetime.fromtimestamp(epoch_ms / MS_PER_S, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def typed_array(values: Any, dtype: str = "f8") -> dict[str, str]:
    """A numeric array as a plotly.js typed array: little-endian bytes in base64, with a shape if 2-D."""
    array = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))
    encoded = {"dtype": dtype, "bdata": base64.b64encode(array.tobytes()).decode("ascii")}
    if array.ndim > 1:
        encoded["shape"] = ", ".join(str(n) for n in array.shape)
    return encoded


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return typed_array(value, "f8" if value.dtype.kind in "fiu" and value.dtype.itemsize == 8 else "f4")
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot put {type(value).__name__} in a figure")


def figure_json(figure: Figure | go.Figure) -> SafeString:
    """A figure as JSON that can sit inside a <script> element (escaped like Django's json_script)."""
    if isinstance(figure, go.Figure):
        text = pio.to_json(figure, validate=False)
    else:
        text = json.dumps(figure, separators=(",", ":"), default=_plain, allow_nan=False)
    return mark_safe(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))

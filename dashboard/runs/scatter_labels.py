"""Where a scatter's axes end and its point labels go, so that every point shows and no two labels overlap.

The page decides a chart's width, so it is not known here; its plot height is (the figure's height less
its margins). Labels are placed in pixels of a plot assumed as narrow as the page ever makes it
(``PLOT_WIDTH_MIN_PX``), centred over their points: two labels apart there are further apart on any wider
plot, since the distance between points grows with the width and the labels' sizes do not. Heights are
rows of the plot's height as the figure fixes it, so labels in different rows never meet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PLOT_WIDTH_MIN_PX = 400.0
CHAR_WIDTH_PX = 7.5  # Plotly's 12 px font averages under this per character
LABEL_HEIGHT_PX = 18.0
MARKER_RADIUS_PX = 9.0
GAP_PX = 3.0


@dataclass(frozen=True)
class Axis:
    low: float
    high: float

    def fraction(self, value: float) -> float:
        return (value - self.low) / (self.high - self.low)

    def value(self, fraction: float) -> float:
        return self.low + fraction * (self.high - self.low)


def fitted_axis(values: Sequence[float], margin: float) -> Axis:
    """An axis over ``values`` with at least ``margin`` (a fraction of the axis) free at either end."""
    low, high = min(values), max(values)
    if high - low <= 1e-9 * max(abs(high), 1.0):  # one value: a tenth of it either side
        pad = 0.1 * abs(high) or 1.0
        return Axis(low - pad, high + pad)
    pad = (high - low) * margin / (1 - 2 * margin)
    return Axis(low - pad, high + pad)


@dataclass(frozen=True)
class _Box:
    x0: float
    x1: float
    y0: float
    y1: float

    def hits(self, other: _Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1


def label_width_px(label: str) -> float:
    return CHAR_WIDTH_PX * len(label) + 6


def place_labels(xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], x_axis: Axis, y_axis: Axis,
                 plot_height_px: float) -> list[float]:
    """Each label's centre height, in y-axis units.

    Labels sit in rows a label's height apart, each in the row nearest above or below its point that is clear
    of the labels placed before it and of the markers; where no row is clear of both, the nearest row clear of the
    labels (there is always one while there are fewer labels than rows: each label takes one row).
    """
    pitch = LABEL_HEIGHT_PX + GAP_PX
    half_h = LABEL_HEIGHT_PX / 2
    rows = [half_h + k * pitch for k in range(max(int((plot_height_px - LABEL_HEIGHT_PX) // pitch) + 1, 1))]
    points = [(x_axis.fraction(x) * PLOT_WIDTH_MIN_PX, y_axis.fraction(y) * plot_height_px)
              for x, y in zip(xs, ys, strict=True)]
    markers = [_Box(px - MARKER_RADIUS_PX, px + MARKER_RADIUS_PX, py - MARKER_RADIUS_PX, py + MARKER_RADIUS_PX)
               for px, py in points]
    placed: list[_Box] = []
    heights: list[float] = []
    for (px, py), label in zip(points, labels, strict=True):
        half_w = label_width_px(label) / 2
        reach = MARKER_RADIUS_PX + GAP_PX + half_h  # from the point to a label's centre just above or below it
        # Nearest to just above or just below the point, above first: a second label under a point keeps its
        # arrow clear of the first label, where stacking it higher would draw its arrow across the first.
        nearest = sorted(rows, key=lambda row: (min(abs(row - py - reach), abs(row - py + reach)), row < py))

        def box(row: float, half_w: float = half_w, px: float = px) -> _Box:
            return _Box(px - half_w - GAP_PX, px + half_w + GAP_PX, row - half_h, row + half_h)

        row = next((r for r in nearest if not any(box(r).hits(b) for b in placed + markers)), None)
        if row is None:
            row = next((r for r in nearest if not any(box(r).hits(b) for b in placed)), nearest[0])
        placed.append(box(row))
        heights.append(y_axis.value(row / plot_height_px))
    return heights

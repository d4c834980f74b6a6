"""Reading the Plotly figures a page embeds (as ``web/charts.js`` does)."""

from __future__ import annotations

import base64
import json
import re

import numpy as np


def figures_in(html: str) -> dict[str, dict]:
    found = re.findall(r'<script type="application/json" data-plot="([\w-]+)">(.*?)</script>', html, re.S)
    return {div: json.loads(text) for div, text in found}


def values(array) -> np.ndarray:
    """Plotly writes numpy arrays as base64 typed arrays in figure JSON."""
    if isinstance(array, dict):
        data = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
        return data.reshape([int(n) for n in str(array["shape"]).split(",")]) if "shape" in array else data
    return np.asarray(array)

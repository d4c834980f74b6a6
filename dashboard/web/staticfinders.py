"""Serve plotly.js from the installed plotly wheel as ``vendor/plotly.min.js`` (never from a CDN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, overload

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_JS_PATH = "vendor/plotly.min.js"
_PACKAGE_DATA = Path(plotly.__file__).resolve().parent / "package_data"


class _SingleFileStorage(FileSystemStorage):
    """Exposes package_data/plotly.min.js under the name vendor/plotly.min.js."""

    def path(self, name: str) -> str:
        return str(_PACKAGE_DATA / "plotly.min.js")


class PlotlyJsFinder(BaseFinder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.storage = _SingleFileStorage(location=str(_PACKAGE_DATA))

    def check(self, **kwargs: Any) -> list[Any]:
        return []

    @overload
    def find(self, path: str, find_all: Literal[False] = False, **kwargs: Any) -> str | None: ...

    @overload
    def find(self, path: str, find_all: Literal[True], **kwargs: Any) -> list[str]: ...

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str] | None:
        every = find_all or kwargs.get("all")  # "all": the name before Django 5.2
        if path == PLOTLY_JS_PATH:
            match = self.storage.path(path)
            return [match] if every else match
        return [] if every else None

    def list(self, ignore_patterns: Any) -> Any:
        yield PLOTLY_JS_PATH, self.storage

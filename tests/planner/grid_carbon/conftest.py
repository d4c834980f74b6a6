"""Shared fixtures for the carbon tests (no Django needed: ``pytest -p no:django tests/planner/grid_carbon``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.planner.grid_carbon.fake_http import FakeServer, serving


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """A threaded HTTP server on 127.0.0.1 with an OS-chosen port, stopped after the test."""
    with serving() as state:
        yield state

"""Fixtures for the carbon app's tests: a fake provider server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.planner.carbon.fake_http import FakeServer, QuietServer, handler_for


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """A threaded HTTP server on 127.0.0.1 with an OS-chosen port, stopped after the test."""
    state = FakeServer()
    server = QuietServer(("127.0.0.1", 0), handler_for(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()

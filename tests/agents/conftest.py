"""Fixtures for the agent tests (they need no Django: run with ``pytest -p no:django tests/agents``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agents.support import RedisServer, free_port, require_redis_server


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free port: no other test or worker can take our messages."""
    server = RedisServer(require_redis_server(), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()

"""Shared test setup: service checks that fail (never skip) on CI, and browser launch options."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

# The REST API's shared fixtures (``world``): API tests live with the app whose router they test.
pytest_plugins = ["tests.api_world"]

# pytest-playwright's sync API runs an event loop in the test thread; Django's ORM must still work there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ON_CI = os.environ.get("CI", "").lower() == "true"
# Tests flush this Redis database and run workers on it. Unset, each test session takes its own database
# number, so two sessions on one machine don't consume each other's messages; `make test` sets 14.
REDIS_URL = os.environ.get("WATTWISE_TEST_REDIS_URL") or f"redis://127.0.0.1:6379/{1 + os.getpid() % 12}"


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def need_service(what: str, ok: bool) -> None:
    """Skip locally when a service is missing; on CI a missing service is a failure."""
    if ok:
        return
    message = f"{what} is not reachable"
    if ON_CI:
        pytest.fail(message + " (CI=true: tests that need it must not skip)")
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    need_service(f"Redis at {REDIS_URL}", _reachable(REDIS_URL, 6379))
    return REDIS_URL


@pytest.fixture
def postgres() -> None:
    from django.db import connection

    need_service("PostgreSQL (set DATABASE_URL=postgres://…)", connection.vendor == "postgresql")


@pytest.fixture
def quick_demo(monkeypatch):
    """The demo's runs as `make run` seeds them, sampled every 20 s in 10-minute windows.

    The same runs, nodes, resets and estimated GPUs through the same ingest path; simulating the GPUs
    dominates seeding, so this is about ten times quicker (tests that seed the demo took ~23 s each).
    """
    from dataclasses import replace

    from dashboard.demo import seed as demo

    monkeypatch.setattr(demo, "DEMO_RUNS", tuple(replace(d, rate_hz=0.05, window_s=600) for d in demo.DEMO_RUNS))


# The demo seeded at a fixed time, so its runs fall in one known quarter whatever today is (reports' tests).
DEMO_NOW_ISO, DEMO_QUARTER = "2026-08-15T12:00:00+00:00", "2026-Q3"


@pytest.fixture
def demo_in_a_quarter(quick_demo, django_capture_on_commit_callbacks) -> str:
    """The quick demo, its runs ending on 2026-08-15 (in ``DEMO_QUARTER``), with their carbon figures computed."""
    from datetime import datetime

    from dashboard.demo import seed as demo

    with django_capture_on_commit_callbacks(execute=True):  # the recomputes queued as the runs close
        demo.demo_user()
        demo.seed(now=datetime.fromisoformat(DEMO_NOW_ISO))
    return demo.DEMO_PROJECT


@pytest.fixture
def redis_page_cache(settings, redis_url):
    """Django's cache on the test Redis, page caching on, emptied before and after: what cached pages and
    cached plan figures are tested against."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": redis_url, "KEY_PREFIX": "wattwise-test"}}
    settings.WATTWISE_PAGE_CACHE = True
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _empty_page_cache():
    """Each test starts with an empty cache: the database is rolled back between tests, the cache is not."""
    yield
    try:
        from django.core.cache import cache

        cache.clear()
    except Exception:  # the agent-only environments have no Django settings
        pass

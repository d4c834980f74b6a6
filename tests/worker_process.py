"""A real Celery worker in a subprocess, on the test database and a Redis broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from celery import Celery

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """The URL of the database pytest-django created, so a worker process writes where tests read."""
    from django.db import connection

    s = connection.settings_dict
    return f"postgres://{s['USER'] or 'postgres'}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def flush(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()


def publisher(redis_url: str) -> Celery:
    """A bare Celery client on the broker, for publishing tasks by name as agents do."""
    return Celery("test-publisher", broker=redis_url, set_as_current=False)


@contextmanager
def worker(
    redis_url: str, *, visibility_timeout_s: int = 3600, pool: str = "solo", queues: str | None = None
) -> Iterator[subprocess.Popen[str]]:
    """``celery -A dashboard worker`` as deployed: every queue the app uses, unless ``queues`` (``-Q``) narrows it."""
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": redis_url,
        "CELERY_VISIBILITY_TIMEOUT": str(visibility_timeout_s),
        "CELERY_WORKER_PREFETCH_MULTIPLIER": "1",
        "DATABASE_CONN_MAX_AGE": "0",
    }
    command = [sys.executable, "-m", "celery", "-A", "dashboard", "worker", *(["-Q", queues] if queues else []),
               "-P", pool, "-c", "1", "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def kill_hard(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the worker and its children: no chance to ack, roll back or clean up."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, process: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"worker exited early ({process.returncode}):\n{process.stdout.read() if process.stdout else ''}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")

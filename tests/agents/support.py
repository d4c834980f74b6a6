"""Helpers for the agent tests: a private Redis server, and readers for what the agent sent."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import pytest

from wattwise_agent import wire

TOKEN = "test-node-token-not-a-secret"
KEY = wire.signing_key(TOKEN)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed (CI must install it: apt-get install redis-server)")
        pytest.skip("redis-server is not installed")
    return path


@dataclass
class RedisServer:
    """A throw-away redis-server on a free port, which a test may stop and start again."""

    binary: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    # With a directory, every write is fsynced to an append-only file before Redis answers, so a server
    # killed with SIGKILL keeps everything it acknowledged (what a broker outage test needs).
    durable_dir: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = ["--appendonly", "no"]
        if self.durable_dir is not None:
            persistence = ["--appendonly", "yes", "--appendfsync", "always", "--dir", self.durable_dir]
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=0)


def opened(envelope: dict[str, Any]) -> dict[str, Any]:
    """Verify an envelope's signature with the test key and return its payload."""
    return wire.open_envelope(envelope, envelope["kind"], KEY)


def batches(envelopes: list[dict[str, Any]]) -> list[wire.Batch]:
    return [wire.decode_batch(opened(e)) for e in envelopes if e["kind"] == "batch"]


def energy_by_gpu_mj(decoded: list[wire.Batch]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for batch in decoded:
        for gpu in batch.gpus:
            totals[gpu.uuid] = totals.get(gpu.uuid, 0) + int(gpu.energy_deltas_mj().sum())
    return totals


def queued_envelopes(server: RedisServer, queue: str = wire.TELEMETRY_QUEUE) -> list[dict[str, Any]]:
    """The envelopes in a Redis-backed Celery queue, oldest first (kombu LPUSHes, workers BRPOP)."""
    import base64
    import json

    raw = server.client().lrange(queue, 0, -1)
    out = []
    for item in reversed(raw):
        message = json.loads(item)
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, _kwargs, _embed = json.loads(body)
        out.append(args[0])
    return out

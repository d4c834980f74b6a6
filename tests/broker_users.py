"""Broker users that may only publish telemetry, made as docs/agent.md tells operators to make them: a
RabbitMQ user in a throw-away virtual host, and a Redis ACL user.

No Django here: the agent tests use it too.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.conftest import need_service

# configure, write, read: create nothing, publish only to the telemetry exchange, read (consume) nothing.
RABBITMQ_NODE_PERMISSIONS = ("^$", "^telemetry$", "^$")
# PING (kombu checks the connection) and LPUSH onto the telemetry list; no other command, key or channel.
REDIS_NODE_RULES = ("reset", "on", "resetchannels", "-@all", "+ping", "+lpush", "%W~telemetry")
RABBITMQ_HOST, RABBITMQ_PORT = "127.0.0.1", 5672


@dataclass(frozen=True)
class RabbitVhost:
    name: str
    admin_url: str  # guest: what the app's web and worker processes use
    node_url: str  # a node's user, with RABBITMQ_NODE_PERMISSIONS


def _rabbitmqctl(*args: str) -> None:
    result = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"rabbitmqctl {' '.join(args)}: {result.stderr or result.stdout}"


def _rabbitmq_reachable() -> bool:
    try:
        with socket.create_connection((RABBITMQ_HOST, RABBITMQ_PORT), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def rabbitmq_vhost() -> Iterator[RabbitVhost]:
    """A virtual host of its own (nothing another test or the app does can meet it) with a node user."""
    need_service(
        "RabbitMQ on 127.0.0.1:5672 with rabbitmqctl, as root",
        shutil.which("rabbitmqctl") is not None and os.geteuid() == 0 and _rabbitmq_reachable(),
    )
    suffix = secrets.token_hex(4)
    # Hex: a password starting with "-" (1 in 64 of token_urlsafe's) is read by rabbitmqctl as an option.
    vhost, user, password = f"wattwise-test-{suffix}", f"wattwise-node-{suffix}", secrets.token_hex(16)
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        _rabbitmqctl("add_user", user, password)
        try:
            _rabbitmqctl("set_permissions", "-p", vhost, user, *RABBITMQ_NODE_PERMISSIONS)
            base = f"{RABBITMQ_HOST}:{RABBITMQ_PORT}/{vhost}"
            yield RabbitVhost(vhost, f"amqp://guest:guest@{base}", f"amqp://{user}:{password}@{base}")
        finally:
            _rabbitmqctl("delete_user", user)
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def redis_node_user(admin: Any, port: int, name: str = "wattwise-node-01") -> str:
    """Create the node's ACL user through ``admin`` (a redis client); return the node's broker URL."""
    password = secrets.token_urlsafe(16)
    admin.execute_command("ACL", "SETUSER", name, *REDIS_NODE_RULES, f">{password}")
    return f"redis://{name}:{password}@127.0.0.1:{port}/0"

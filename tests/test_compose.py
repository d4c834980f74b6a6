"""docker-compose.yml is valid and defines the stack the README promises, with health checks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import need_service

ROOT = Path(__file__).resolve().parent.parent


def test_compose_file_validates_with_docker_compose():
    need_service("docker-compose (Debian package)", shutil.which("docker-compose") is not None)
    env = {**os.environ, "SECRET_KEY": "test-only"}
    for extra in ([], ["--profile", "demo"]):
        result = subprocess.run(
            ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), *extra, "config", "-q"],
            capture_output=True, text=True, env=env, cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr


def test_compose_defines_the_stack_with_health_checks():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "agent"} <= set(services)
    for name in ("postgres", "redis", "web", "worker", "beat"):
        assert "healthcheck" in services[name], name
    assert services["agent"]["profiles"] == ["demo"]
    assert "gunicorn" in services["web"]["command"]
    assert "celery,telemetry" in " ".join(services["worker"]["command"])


def test_compose_refuses_to_start_without_a_secret_key():
    need_service("docker-compose (Debian package)", shutil.which("docker-compose") is not None)
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    result = subprocess.run(["docker-compose", "config", "-q"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr

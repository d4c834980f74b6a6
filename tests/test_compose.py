"""docker-compose.yml is valid and defines the stack the README promises, with health checks, for a real
cluster: the web entry is the only thing published (PostgreSQL and Redis stay on the compose network),
nodes reach the app by URL and token, and TLS can be terminated in front of it (deploy/Caddyfile)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import need_service
from wattwise_agent.wire import TELEMETRY_QUEUE

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ([], ["--profile", "demo"], ["--profile", "tls"], ["--profile", "tls", "--profile", "demo"],
            ["--profile", "monitoring"])


def resolved(*profiles: str, **env: str) -> dict[str, Any]:
    """The compose file as docker-compose resolves it (variables, anchors, profiles)."""
    need_service("docker-compose (Debian package)", shutil.which("docker-compose") is not None)
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), *profiles, "config"],
        capture_output=True, text=True, env={**os.environ, "SECRET_KEY": "test-only", **env}, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def active(spec: dict[str, Any], profiles: list[str]) -> dict[str, Any]:
    """The services ``docker compose up`` starts with ``profiles`` (docker-compose 1 lists them all)."""
    chosen = set(profiles[1::2])
    return {name: s for name, s in spec["services"].items() if not s.get("profiles") or chosen & set(s["profiles"])}


def port(entry: str | dict[str, Any]) -> tuple[str, int, int]:
    """(host address, published port, container port) of a resolved port entry, in either form it takes."""
    if isinstance(entry, dict):
        return entry.get("host_ip", ""), int(entry["published"]), int(entry["target"])
    *host, published, target = entry.split("/")[0].split(":")
    return ":".join(host), int(published), int(target)


def test_compose_file_validates_with_docker_compose():
    need_service("docker-compose (Debian package)", shutil.which("docker-compose") is not None)
    env = {**os.environ, "SECRET_KEY": "test-only"}
    for extra in PROFILES:
        result = subprocess.run(
            ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), *extra, "config", "-q"],
            capture_output=True, text=True, env=env, cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr


def test_compose_defines_the_stack_with_health_checks():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"postgres", "redis", "web", "consumer", "worker", "beat", "agent", "caddy"} <= set(services)
    for name in ("postgres", "redis", "web", "consumer", "worker", "beat"):
        assert "healthcheck" in services[name], name
    assert services["agent"]["profiles"] == ["demo"]
    assert services["caddy"]["profiles"] == ["tls"]
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]
    assert "gunicorn" in services["web"]["command"]


def queues_consumed(command: str | list[str]) -> set[str]:
    """The broker queues a service's command takes messages from: a Celery worker's (``-Q``, else every queue
    the app uses), the coalescing consumer's telemetry queue; none for anything else."""
    from django.conf import settings

    words = command.split() if isinstance(command, str) else command
    if "consume_telemetry" in words:
        return {TELEMETRY_QUEUE}
    if words[:4] != ["celery", "-A", "dashboard", "worker"]:
        return set()
    for flag in ("-Q", "--queues"):
        if flag in words:
            return set(words[words.index(flag) + 1].split(","))
    return {queue.name for queue in settings.CELERY_TASK_QUEUES}


def test_each_queue_the_app_uses_is_consumed_by_one_service():
    # The consumer stores what nodes send (telemetry) in coalesced transactions; the worker runs the app's own
    # tasks (imports, carbon recomputes, beat's) and no longer takes telemetry messages one at a time.
    from django.conf import settings

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    consumed = {name: queues_consumed(s["command"]) for name, s in services.items() if "command" in s}
    consumed = {name: queues for name, queues in consumed.items() if queues}
    assert consumed == {"consumer": {TELEMETRY_QUEUE}, "worker": {"celery"}}
    assert set().union(*consumed.values()) == {queue.name for queue in settings.CELERY_TASK_QUEUES}


def test_the_consumer_runs_with_the_workers_image_environment_and_restart_policy():
    services = resolved()["services"]
    consumer, worker = services["consumer"], services["worker"]
    for key in ("image", "build", "environment", "restart", "depends_on"):
        assert consumer[key] == worker[key], key
    assert consumer["restart"] == "unless-stopped"
    assert {name: d["condition"] for name, d in consumer["depends_on"].items()} == {
        "postgres": "service_healthy", "redis": "service_healthy"}
    # Healthy once it is connected to the broker: the file its command makes then, removed before it starts.
    ready = "/tmp/consume_telemetry.ready"
    assert f"rm -f {ready} &&" in consumer["command"]
    assert f"exec python manage.py consume_telemetry --ready-file {ready}" in consumer["command"]
    assert consumer["healthcheck"]["test"] == ["CMD-SHELL", f"test -f {ready}"]
    assert "ports" not in consumer
    # The demo agent's batches go web -> telemetry queue -> consumer.
    assert "consumer" in resolved("--profile", "demo")["services"]["agent"]["depends_on"]


@pytest.mark.parametrize("profiles", PROFILES, ids=lambda p: " ".join(p) or "default")
def test_only_the_web_entry_publishes_a_port(profiles):
    services = active(resolved(*profiles), profiles)
    published = {name for name, service in services.items() if service.get("ports")}
    expected = {"web"} | ({"caddy"} if "tls" in profiles else set()) | ({"grafana"} if "monitoring" in profiles else set())
    assert published == expected
    for name, service in services.items():
        assert service.get("network_mode") != "host", name
    assert [port(p) for p in services["web"]["ports"]] == [("", 8000, 8000)]
    if "tls" in profiles:
        assert sorted(port(p) for p in services["caddy"]["ports"]) == [("", 80, 80), ("", 443, 443)]
    if "monitoring" in profiles:
        # Grafana's login is for this host only unless the operator publishes it on purpose.
        assert [port(p) for p in services["grafana"]["ports"]] == [("127.0.0.1", 3000, 3000)]


def test_behind_a_tls_proxy_plain_http_can_be_kept_to_this_host():
    services = resolved("--profile", "tls", WATTWISE_HTTP_PORT="127.0.0.1:8000", BEHIND_TLS_PROXY="1",
                        ALLOWED_HOSTS="wattwise.example.org")["services"]
    assert [port(p) for p in services["web"]["ports"]] == [("127.0.0.1", 8000, 8000)]
    web = services["web"]["environment"]
    assert web["BEHIND_TLS_PROXY"] == "1"
    # The name other services use for the app stays allowed whatever the operator sets.
    assert web["ALLOWED_HOSTS"] == "wattwise.example.org,web"


def test_the_stack_runs_as_production_behind_tls_unless_told_otherwise():
    # BEHIND_TLS_PROXY=1: HTTPS redirect, Secure cookies, HSTS (dashboard/settings.py, docs/deploy.md).
    for profiles in PROFILES:
        assert resolved(*profiles)["services"]["web"]["environment"]["BEHIND_TLS_PROXY"] == "1"
    assert resolved(BEHIND_TLS_PROXY="0")["services"]["web"]["environment"]["BEHIND_TLS_PROXY"] == "0"


def test_the_demo_agent_reaches_the_app_by_url_and_token_not_through_the_broker():
    services = resolved("--profile", "demo")["services"]
    agent = services["agent"]["environment"]
    assert agent["WATTWISE_URL"] == "http://web:8000"
    assert "WATTWISE_BROKER_URL" not in agent
    assert "web" in agent["ALLOWED_HOSTS"].split(",")
    assert "$$(python manage.py create_node sim-node-1" in services["agent"]["command"]


def test_the_caddyfile_terminates_tls_and_forwards_to_the_web_service():
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (apt-get install caddy) to parse deploy/Caddyfile")
    result = subprocess.run(
        [caddy, "adapt", "--config", str(ROOT / "deploy" / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True, text=True, env={**os.environ, "WATTWISE_DOMAIN": "wattwise.example.org"},
    )
    assert result.returncode == 0, result.stderr
    (server,) = json.loads(result.stdout)["apps"]["http"]["servers"].values()
    assert server["listen"] == [":443"]
    (route,) = server["routes"]
    assert route["match"] == [{"host": ["wattwise.example.org"]}]
    handlers = [h for r in route["handle"][0]["routes"] for h in r["handle"]]
    proxy = next(h for h in handlers if h["handler"] == "reverse_proxy")
    assert proxy["upstreams"] == [{"dial": "web:8000"}]


def test_compose_refuses_to_start_without_a_secret_key():
    need_service("docker-compose (Debian package)", shutil.which("docker-compose") is not None)
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    result = subprocess.run(["docker-compose", "config", "-q"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_the_monitoring_profile_mounts_files_that_exist_in_the_repository():
    services = resolved("--profile", "monitoring")["services"]
    checked = 0
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            # docker-compose 1 writes "source:target[:mode]"; a bind mount's source is an absolute path.
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if not source.startswith("/") or source.endswith("wattwise-token"):
                continue  # a named volume, or the operator's token (docs/exports.md), never in the repository
            assert Path(source).exists(), (name, source)
            checked += 1
    assert checked == 3  # prometheus.yml, Grafana's provisioning and its dashboard
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["web:8000"]}]
    assert job["authorization"]["credentials_file"] == "/etc/prometheus/wattwise-token"

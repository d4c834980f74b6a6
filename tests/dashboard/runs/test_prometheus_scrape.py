"""A real Prometheus (Debian's package) scrapes the app's /metrics with a Bearer token from a file, as
docs/exports.md tells a team to configure it, and answers PromQL about a running run."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboard.projects.tokens import issue_token
from dashboard.telemetry import ingest
from tests.conftest import need_service
from tests.factories import member, register, simple_batch
from wattwise_agent.wire import seal

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.processes]

# Bounds for the polling below: Prometheus starts in about a second and scrapes every second.
START_WAIT_S = 60.0
POLL_S = 0.25


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape_config(job: str, target: str, token_file: Path) -> dict[str, Any]:
    return {
        "job_name": job,
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "metrics_path": "/metrics",
        "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
        "static_configs": [{"targets": [target]}],
    }


@pytest.fixture
def prometheus(live_server, tmp_path) -> Iterator[Any]:
    """Start Prometheus scraping the live server; yields a function that writes its token files first."""
    binary = shutil.which("prometheus")
    need_service("Debian's prometheus package (.ci/services installs it)", binary is not None)
    assert binary is not None
    port = free_port()
    target = urllib.parse.urlparse(live_server.url).netloc
    processes: list[subprocess.Popen[bytes]] = []

    def start(tokens: dict[str, str]) -> str:
        jobs = []
        for job, token in tokens.items():
            token_file = tmp_path / f"{job}.token"
            token_file.write_text(token + "\n")
            jobs.append(scrape_config(job, target, token_file))
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({"scrape_configs": jobs}))
        log = (tmp_path / "prometheus.log").open("wb")
        processes.append(subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT,
        ))
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]


def poll(what: str, read: Any) -> Any:
    """``read()`` until it returns something truthy, for at most START_WAIT_S seconds."""
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        try:
            value = read()
        except OSError:  # Prometheus not listening yet
            value = None
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"Prometheus did not show {what} within {START_WAIT_S:.0f} s")


def test_prometheus_reads_a_running_runs_power_back_with_promql(prometheus):
    node = register("node-a", "vision")
    ingest.ingest_batch(simple_batch(node, seq=0, run="llama"))
    message = simple_batch(node, seq=1, run="llama")
    payload = json.loads(message["body"])
    payload["gpus"][0]["power_mw"] = [200_000 + 10_000 * i for i in range(10)]  # mean 245 W
    ingest.ingest_batch(seal("batch", node.name, payload, node.token))
    ana = member("ana", "vision")

    base = prometheus({"wattwise": issue_token(ana), "wrong-token": "ww_not-a-real-token"})

    power = poll("the run's power", lambda: api(base, "query", query='wattwise_gpu_power_watts{run="llama"}')["result"])
    assert len(power) == 1
    assert power[0]["metric"]["project"] == "vision"
    assert power[0]["metric"]["gpu"] == "0"
    assert float(power[0]["value"][1]) == pytest.approx(245.0)

    # The scraper sees what its token's user may see, and a wrong token is refused, not answered empty.
    def scraped_targets() -> list[dict[str, Any]] | None:
        targets = api(base, "targets")["activeTargets"]
        return targets if all(t["health"] != "unknown" for t in targets) else None

    targets = poll("both targets scraped", scraped_targets)
    health = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets}
    assert health["wattwise"] == ("up", "")
    assert health["wrong-token"][0] == "down"
    assert "401" in health["wrong-token"][1]

    energy = api(base, "query", query='sum by (project) (wattwise_project_energy_joules_total{job="wattwise"})')
    assert [r["metric"]["project"] for r in energy["result"]] == ["vision"]

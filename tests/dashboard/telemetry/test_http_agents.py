"""Real agents (``python -m wattwise_agent stream --url``) against the real app over HTTP: what is stored is what was
sent; a wrong token stops the agent loudly and loses nothing; a busy app makes it wait and loses nothing."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.db.models import Sum

from dashboard.telemetry import http_ingest
from dashboard.telemetry.models import BatchReceipt, Rejection, Run, RunGpu, RunNode
from tests.dashboard.telemetry.http_support import celery_on_broker
from tests.factories import register
from tests.worker_process import ROOT, flush, wait_until, worker
from wattwise_agent import wire

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.processes]


def agent(url: str, token: str, node: str, spool: Path, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "wattwise_agent", "stream", "--backend", "simulated", "--node", node, "--url", url,
               "--quiet", "--spool-dir", str(spool), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                          env={"WATTWISE_TOKEN": token, "PATH": "/usr/bin:/bin"})


def exit_line(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return json.loads(result.stdout.strip().splitlines()[-1])


def spooled(spool: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(spool.glob("*.json"))]


def stored_samples(run: str) -> int:
    return int(BatchReceipt.objects.filter(run__name=run).aggregate(n=Sum("samples"))["n"] or 0)


def test_agents_stream_over_http_and_the_stored_energy_is_the_simulators(postgres, live_server, tmp_path):
    nodes = [register("http-a", "vision"), register("http-b", "vision")]
    lines = []
    for node, seed, extra in ((nodes[0], "7", ["--reset-at", "4m"]), (nodes[1], "8", ["--without-counter", "1"])):
        result = agent(live_server.url, node.token, node.name, tmp_path / node.name, "--run", "over-http",
                       "--gpus", "2", "--duration", "10m", "--start", "2026-01-01T00:00:00Z", "--fast", "--seed", seed,
                       *extra)
        assert result.returncode == 0, result.stderr
        lines.append(exit_line(result))
    assert all(line["spooled"] == 0 and line["refused"] == 0 for line in lines)
    assert stored_samples("over-http") == sum(line["samples_sent"] for line in lines)
    assert Run.objects.get(name="over-http").status == Run.Status.FINISHED
    stored = dict(RunGpu.objects.values_list("gpu__uuid", "energy_j"))
    for line in lines:
        for uuid, energy_j in line["true_energy_j"].items():
            tolerance = 1e-3 if uuid == "GPU-SIM-http-b-1" else 1e-7  # the one without a counter is estimated
            assert stored[uuid] == pytest.approx(energy_j, rel=tolerance), uuid
    assert not Rejection.objects.exists()


def test_a_wrong_token_stops_the_agent_keeps_every_batch_and_the_rotated_token_delivers_them(
    postgres, live_server, tmp_path
):
    node = register("http-a", "vision")
    spool = tmp_path / "spool"
    # Real time, ten minutes asked: only stopping at the 401 ends it within the subprocess's timeout.
    refused = agent(live_server.url, "ww_not-the-token", node.name, spool, "--run", "first", "--gpus", "2",
                    "--duration", "10m", "--window", "1s", timeout_s=60)
    assert refused.returncode == 3, refused.stderr
    assert "wattwise-agent: token rejected (401): unknown key" in refused.stderr
    kept = spooled(spool)
    assert kept[0]["kind"] == "open_run" and kept[-1]["kind"] == "close_run"
    closing = json.loads(kept[-1]["body"])
    batches = [json.loads(e["body"]) for e in kept if e["kind"] == "batch"]
    # Every batch the stream made is there: numbered from 0 without a gap, as many samples as it declares.
    assert [b["seq"] for b in batches] == list(range(closing["last_seq"] + 1 if closing["last_seq"] is not None else 0))
    assert sum(len(g["t_ms"]) for b in batches for g in b["gpus"]) == closing["samples_sent"]
    assert Rejection.objects.filter(reason_code=Rejection.Code.UNKNOWN_KEY).exists()
    assert not Run.objects.exists()

    out = io.StringIO()
    call_command("create_node", node.name, "--project", "vision", "--rotate", stdout=out, stderr=io.StringIO())
    token = out.getvalue().strip().splitlines()[-1]
    rerun = agent(live_server.url, token, node.name, spool, "--run", "second", "--duration", "30s", "--fast")
    assert rerun.returncode == 0, rerun.stderr
    assert exit_line(rerun)["spooled"] == 0 and spooled(spool) == []
    first = Run.objects.get(name="first")
    assert first.status == Run.Status.FINISHED
    assert stored_samples("first") == closing["samples_sent"]
    assert RunNode.objects.get(run=first).samples_declared == closing["samples_sent"]


def test_a_busy_app_makes_the_agent_wait_and_nothing_is_dropped(
    postgres, live_server, redis_url, settings, monkeypatch, tmp_path
):
    settings.WATTWISE_INGEST_MAX_QUEUE = 3
    monkeypatch.setattr(http_ingest, "DEPTH_REFRESH_S", 0.0)  # measure the queue on every request
    flush(redis_url)
    node = register("http-a", "vision")
    spool = tmp_path / "spool"
    with celery_on_broker(redis_url):
        # No worker yet: once more than 3 messages wait, the app answers 429 (a request's envelopes are
        # queued together, so the queue may pass the bound by one request's worth).
        busy = agent(live_server.url, node.token, node.name, spool, "--run", "busy", "--duration", "2m", "--fast",
                     "--drain-timeout", "0s")
        assert busy.returncode == 0, busy.stderr
        line = exit_line(busy)
        queued = redis.Redis.from_url(redis_url).llen(wire.TELEMETRY_QUEUE)
        assert queued > 3 and line["spooled"] > 0
        assert queued + line["spooled"] == 2 + 2 * 60 // 5 + 1  # open, 25 windows (the last holds the final reading), close
        assert "could not deliver" in busy.stderr

        with worker(redis_url, pool="threads") as process:
            # The next run on the node sends what the first left, first; the app may ask it to wait again.
            rerun = agent(live_server.url, node.token, node.name, spool, "--run", "after", "--duration", "10s",
                          "--fast", "--drain-timeout", "60s")
            assert rerun.returncode == 0, rerun.stderr
            assert exit_line(rerun)["spooled"] == 0
            declared = lambda: RunNode.objects.filter(run__name="busy").values_list("samples_declared", flat=True).first()  # noqa: E731
            wait_until(lambda: declared() is not None and stored_samples("busy") == declared(), 60,
                       "every batch of the busy run", process)
    assert Run.objects.get(name="busy").status == Run.Status.FINISHED
    assert not Rejection.objects.exists()

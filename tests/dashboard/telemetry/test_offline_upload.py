"""Local-first: a run measured with no app gives its summary at once; uploading its run file later
(``wattwise-agent upload FILE``, the real CLI, over HTTP to the real app) stores the same run, and the app's
``run_summary`` gives the same energy per GPU, total, duration and emissions. Uploading again stores nothing
new; a damaged file is refused and nothing of it is stored."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pytest
from django.core.management import call_command

from dashboard.telemetry.models import BatchReceipt, Rejection, Run, RunGpu
from tests.factories import register
from tests.worker_process import ROOT
from wattwise_agent.clock import SteppedClock
from wattwise_agent.torch_hooks import Tracker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

NEW_YEAR_2022_MS = 1_640_995_200_000  # the run straddles it: 2021 and 2022 have different yearly figures
REL = 1e-9


def agent(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", **({"WATTWISE_TOKEN": token} if token else {})}
    return subprocess.run([sys.executable, "-m", "wattwise_agent", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env=env)


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_summary(name: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("run_summary", name, stdout=out)
    return json.loads(out.getvalue())


def assert_the_app_agrees(server: dict[str, Any], energy_j: dict[str, float], total_j: float,
                          emissions_g: float | None) -> None:
    assert set(server["gpus"]) == set(energy_j)
    for uuid, joules in energy_j.items():
        assert server["gpus"][uuid]["energy_j"] == pytest.approx(joules, rel=REL), uuid
    assert server["energy_j"] == pytest.approx(total_j, rel=REL)
    assert server["carbon"]["status"] == "current" and server["pue"] == 1.0
    # No hourly intensity in the app: every hour took the zone's yearly figure, as the agent did.
    assert {h["step"] for h in server["hourly"]} == {"zone_yearly"}
    assert server["emissions_g"] == pytest.approx(emissions_g, rel=REL)


def test_an_offline_tracker_run_uploaded_later_gives_the_app_its_summary_and_a_second_upload_adds_nothing(
    postgres, live_server, monkeypatch, tmp_path
):
    for name in ("WATTWISE_URL", "WATTWISE_BROKER_URL", "WATTWISE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WATTWISE_RUNS_DIR", str(tmp_path / "runs"))
    clock = SteppedClock(NEW_YEAR_2022_MS - 40_000)
    with Tracker("offline-llm", backend="simulated", gpus=2, node="laptop", zone="DE", clock=clock, rate_hz=10,
                 window_s=5) as tracker:
        for step in range(80):
            clock.advance_by(1000)
            tracker.step(step)
    summary = tracker.summary
    assert tracker.error is None and summary is not None and summary.measured is not None
    assert summary.measured.emissions is not None and [y.year for y in summary.measured.emissions.years] == [2021, 2022]
    assert summary.steps == 80 and tracker.run_file is not None

    node = register("gpu-box", "vision")  # the node's own token: the upload's messages are this node's
    uploaded = agent("upload", str(tracker.run_file), "--url", live_server.url, token=node.token)
    assert uploaded.returncode == 0, uploaded.stderr
    report = last_json(uploaded)
    assert report["runs"] == ["offline-llm"] and report["sent"] == report["envelopes"] == summary.batches_made + 2
    assert report["unsent"] == 0 and report["refused"] == 0 and report["unclosed"] == []

    server = run_summary("offline-llm")
    assert_the_app_agrees(server, summary.energy_j, summary.total_energy_j, summary.emissions_g)
    assert server["duration_s"] == summary.duration_s and server["samples"] == summary.measured.samples
    assert server["status"] == Run.Status.FINISHED

    receipts = BatchReceipt.objects.count()
    stored = dict(RunGpu.objects.values_list("gpu__uuid", "energy_j"))
    again = agent("upload", str(tracker.run_file), "--url", live_server.url, token=node.token)
    assert again.returncode == 0, again.stderr
    assert BatchReceipt.objects.count() == receipts == summary.batches_made
    assert dict(RunGpu.objects.values_list("gpu__uuid", "energy_j")) == stored
    assert_the_app_agrees(run_summary("offline-llm"), summary.energy_j, summary.total_energy_j, summary.emissions_g)
    assert Run.objects.get(name="offline-llm").status == Run.Status.FINISHED
    assert not Rejection.objects.exists()


def test_stream_out_records_a_run_whose_exit_line_the_app_reproduces_and_a_cut_off_file_stores_nothing(
    postgres, live_server, tmp_path
):
    out = tmp_path / "replay.jsonl"
    streamed = agent("stream", "--backend", "simulated", "--run", "replayed", "--gpus", "2", "--node", "sim-1",
                     "--duration", "10m", "--start", "2021-12-31T23:55:00Z", "--fast", "--quiet", "--seed", "4",
                     "--reset-at", "4m", "--without-counter", "1", "--region", "aws:eu-central-1", "--out", str(out))
    assert streamed.returncode == 0, streamed.stderr
    line = last_json(streamed)
    assert line["out"] == str(out) and line["spooled"] == 0

    node = register("sim-1", "vision")
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(out.read_bytes()[:-40])  # the close_run line, cut off
    refused = agent("upload", str(damaged), "--url", live_server.url, token=node.token)
    assert refused.returncode == 2 and "the last line is cut off" in refused.stderr and refused.stdout == ""
    assert not Run.objects.exists() and not BatchReceipt.objects.exists() and not Rejection.objects.exists()

    uploaded = agent("upload", str(out), "--url", live_server.url, token=node.token)
    assert uploaded.returncode == 0, uploaded.stderr
    server = run_summary("replayed")
    assert_the_app_agrees(server, line["energy_j"], sum(line["energy_j"].values()), line["emissions_g"])
    assert server["samples"] == line["samples_sent"]
    assert server["gpus"]["GPU-SIM-sim-1-1"]["estimated"] is True  # no counter: power integration, still exact
    assert not Rejection.objects.exists()

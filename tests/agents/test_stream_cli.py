"""The command line: ``python -m wattwise_agent stream`` and ``python -m wattwise_agent probe``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agents.fake_nvml import FakeGpu, FakeNvml
from tests.agents.support import TOKEN, RedisServer, batches, energy_by_gpu_mj, queued_envelopes
from wattwise_agent import cli

ROOT = Path(__file__).resolve().parents[2]
EXIT_KEYS = ["run", "node", "stream", "backend", "simulated", "batches_sent", "samples_sent", "spooled", "refused",
             "energy_j", "true_energy_j"]


def agent(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    if token is not None:
        environment["WATTWISE_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "wattwise_agent", *args], capture_output=True, text=True, cwd=ROOT,
                          env=environment, timeout=60)


def test_fast_replay_of_a_past_period_prints_one_exit_line_with_ground_truth(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    result = agent("stream", "--backend", "simulated", "--run", "t", "--gpus", "2", "--duration", "30s",
                   "--start", "2026-01-01T00:00:00Z", "--fast", "--broker", redis_server.url, "--node", "sim-1",
                   "--spool-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1  # the progress bar went to stderr
    line = json.loads(result.stdout)
    assert list(line) == EXIT_KEYS
    assert line["run"] == "t" and line["node"] == "sim-1" and line["backend"] == "simulated"
    assert line["simulated"] is True and line["spooled"] == 0
    # 30 s at 10 Hz plus the closing reading at 30 s, for each of 2 GPUs; six 5 s windows.
    assert line["samples_sent"] == 2 * (30 * 10 + 1)
    assert line["batches_sent"] == 6
    assert list(line["energy_j"]) == ["GPU-SIM-sim-1-0", "GPU-SIM-sim-1-1"]
    assert all(30 * 65 < joules < 30 * 700 for joules in line["energy_j"].values())
    received = queued_envelopes(redis_server)
    assert [e["kind"] for e in received] == ["open_run"] + ["batch"] * 6 + ["close_run"]
    decoded = batches(received)
    assert decoded[0].window_start_ms == 1_767_225_600_000
    counted = energy_by_gpu_mj(decoded)
    # energy_j is what was measured and sent, as the app counts it; true_energy_j the simulator's truth.
    assert line["energy_j"] == {uuid: mj / 1000 for uuid, mj in counted.items()}
    for uuid, joules in line["true_energy_j"].items():
        assert abs(counted[uuid] - joules * 1000) <= 1.5
    assert TOKEN not in result.stdout + result.stderr


def test_probe_without_nvml_exits_1_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([], library_missing=True))
    assert cli.main(["probe"]) == 1
    err = capsys.readouterr().err
    assert "NVML not available (NVML Shared Library Not Found): no NVIDIA driver on this machine; " \
           "use --backend simulated" in err


def test_probe_on_this_machine_either_lists_gpus_or_explains_why_not() -> None:
    result = agent("probe")
    if result.returncode == 1:
        assert "NVML not available" in result.stderr and "use --backend simulated" in result.stderr
    else:  # a machine with an NVIDIA driver
        assert result.returncode == 0 and "GPU" in result.stdout


def test_probe_lists_gpus_counters_mig_and_selection(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gpus = [FakeGpu("GPU-aaaa", energy_mj=42), FakeGpu("GPU-bbbb", arch=4, name="Tesla P100"),
            FakeGpu("GPU-cccc", mig_mode=1)]
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(gpus))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    assert cli.main(["probe"]) == 0
    out = capsys.readouterr().out
    assert "GPU-aaaa" in out and "energy counter: yes, 42 mJ" in out
    assert "no (power integration, estimated)" in out and "Pascal" in out
    assert "MIG: enabled" in out and out.count("not selected") == 1
    assert cli.main(["probe", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [g["selected"] for g in report["gpus"]] == [True, False, True]


def test_missing_token_is_a_usage_error() -> None:
    result = agent("stream", "--backend", "simulated", "--run", "t", "--broker", "redis://127.0.0.1:1/0",
                   token=None)
    assert result.returncode == 2
    assert "WATTWISE_TOKEN" in result.stderr


def test_replay_options_need_the_simulated_backend() -> None:
    result = agent("stream", "--backend", "nvml", "--run", "t", "--broker", "redis://x", "--fast",
                   "--duration", "1s")
    assert result.returncode == 2 and "--backend simulated" in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60), ("5m", 300), ("3h", 10_800), ("1h30m", 5_400), ("250ms", 0.25), ("90", 90), ("1.5s", 1.5)],
)
def test_durations_are_read_with_their_units(text: str, seconds: float) -> None:
    assert cli.parse_duration_s(text) == pytest.approx(seconds)


def test_a_duration_without_a_known_unit_is_rejected() -> None:
    with pytest.raises(Exception, match="not a duration"):
        cli.parse_duration_s("5 parsecs")

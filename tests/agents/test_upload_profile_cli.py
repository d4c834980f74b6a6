"""Sending a stage profile to the app: ``python -m wattwise_agent upload-profile`` and its library call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.agents.support import KEY, TOKEN, RedisServer, queued_envelopes
from wattwise_agent import cli, wire
from wattwise_agent.profile_csv import ProfileCsvError, check_profile_csv, merge_profile_csvs
from wattwise_agent.profile_upload import ProfileUpload, publish_stage_profile
from wattwise_agent.spool import DiskSpool, MemorySpool
from wattwise_agent.transport import MemoryTransport

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD_KEYS = ["run", "name", "csv", "gpu_name", "p_blocking_w", "recorded_ms"]
# The planner's synthetic A100 profile of 2 stages (perseus.synthetic_profile_csv(2, "a100", seed=1)), kept as a
# file so that the agent's tests need no planner; the planner still reads it (test_the_planner_reads_the_profile_…).
PROFILE = (ROOT / "tests/agents/fixtures/a100_2_stages.csv").read_text()


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    environment["WATTWISE_TOKEN"] = TOKEN
    return subprocess.run([sys.executable, "-m", "wattwise_agent", *args], capture_output=True, text=True, cwd=ROOT,
                          env=environment, timeout=60)


def test_upload_profile_publishes_a_signed_envelope_the_app_can_open(redis_server: RedisServer,
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "gpt3.csv"
    path.write_text(PROFILE)
    result = agent("upload-profile", str(path), "--name", "gpt3-xl a100", "--run", "gpt3-pretrain",
                   "--p-blocking", "83.64", "--gpu-name", "NVIDIA A100-SXM4-80GB", "--node", "gpu-node-01",
                   "--broker", redis_server.url, "--spool-dir", str(tmp_path / "spool"))
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert len(result.stdout.strip().splitlines()) == 1
    assert line["kind"] == "stage_profile" and line["sent"] is True and line["spooled"] == 0
    assert line["stages"] == 2 and line["node"] == "gpu-node-01"
    [envelope] = queued_envelopes(redis_server)
    assert envelope["kind"] == "stage_profile" and envelope["node"] == "gpu-node-01"
    payload = wire.open_envelope(envelope, "stage_profile", KEY)
    assert list(payload) == PAYLOAD_KEYS
    assert payload["csv"] == PROFILE and payload["name"] == "gpt3-xl a100" and payload["run"] == "gpt3-pretrain"
    assert payload["gpu_name"] == "NVIDIA A100-SXM4-80GB" and payload["p_blocking_w"] == 83.64
    assert isinstance(payload["recorded_ms"], int)
    assert check_profile_csv(payload["csv"]).num_stages == 2
    with pytest.raises(wire.WireError, match="bad signature"):
        wire.open_envelope(envelope, "stage_profile", wire.signing_key("another node's token"))
    raw = json.loads(redis_server.client().lrange(wire.TELEMETRY_QUEUE, 0, -1)[0])
    assert raw["headers"]["task"] == wire.TASK_STAGE_PROFILE
    assert TOKEN not in result.stdout + result.stderr


@pytest.fixture
def memory_broker(monkeypatch: pytest.MonkeyPatch) -> MemoryTransport:
    """The CLI's broker connection replaced by an in-memory transport (same envelopes, no Redis)."""
    transport = MemoryTransport()

    class Connected:
        def __init__(self, url: str, **options: Any) -> None:
            pass

        def send(self, envelope: dict[str, Any]) -> None:
            transport.send(envelope)

        def close(self) -> None:
            pass

    monkeypatch.setattr("wattwise_agent.transport.CeleryTransport", Connected)
    monkeypatch.setenv("WATTWISE_TOKEN", TOKEN)
    monkeypatch.setenv("WATTWISE_BROKER_URL", "redis://memory/0")
    return transport


def test_per_stage_files_are_merged_on_the_clocks_every_stage_has(
    memory_broker: MemoryTransport, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header, *rows = PROFILE.splitlines()
    stage_0 = [r for r in rows if r.startswith("0,")]
    stage_1 = [r for r in rows if r.startswith("1,") and ",855," not in r]  # stage 1 stopped early
    paths = []
    for stage, stage_rows in enumerate((stage_0, stage_1)):
        paths.append(tmp_path / f"stage{stage}.csv")
        paths[-1].write_text("\n".join([header, *stage_rows]) + "\n")
    assert cli.main(["upload-profile", *map(str, paths), "--name", "merged", "--gpu-name", "NVIDIA A100",
                     "--node", "n1", "--spool-dir", str(tmp_path / "spool")]) == 0
    captured = capsys.readouterr()
    assert "left out 1 clock(s) not profiled on every stage: 855 MHz" in captured.err
    line = json.loads(captured.out)
    assert line["stages"] == 2 and line["min_mhz"] == 870 and line["run"] is None and line["p_blocking_w"] is None
    payload = wire.open_envelope(memory_broker.envelopes[0], "stage_profile", KEY)
    assert check_profile_csv(payload["csv"]).frequencies_mhz[-1] == 870


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("stage,instruction,frequency,time\n0,forward,1410,0.1\n", "missing column"),
        ("stage,instruction,frequency,time,energy\n0,forward,1410,0.1,-3\n0,backward,1410,0.2,4\n",
         "energy must be positive"),
        ("stage,instruction,frequency,time,energy,time\n0,forward,1410,0.1,3,0.1\n", "column(s) time twice"),
        ("stage,instruction,frequency,time,energy\n0,forward,1410,0.1,3\n0,backward,1410,0.2,4\n"
         "2,forward,1410,0.1,3\n2,backward,1410,0.2,4\n", "stage 1: stage missing"),
        ("stage,instruction,frequency,time,energy\n0,forward,1410,0.1,3\n", "backward"),
        ("stage,instruction,frequency,time,energy\n0,forward,1410,0.1,3\n0,backward,1410,0.2,4\n"
         "1,forward,1410,0.1,3\n", "backward"),
        ("", "empty"),
    ],
)
def test_a_bad_profile_exits_2_with_the_reason_and_sends_nothing(
    content: str, message: str, memory_broker: MemoryTransport, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "profile.csv"
    path.write_text(content)
    assert cli.main(["upload-profile", str(path), "--name", "p", "--gpu-name", "g", "--node", "n",
                     "--spool-dir", str(tmp_path / "spool")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("wattwise-agent: invalid profile: ")
    assert message in captured.err and captured.err.count("\n") == 1
    assert memory_broker.envelopes == [] and len(DiskSpool(tmp_path / "spool")) == 0


def test_usage_errors_exit_2(memory_broker: MemoryTransport, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "profile.csv"
    path.write_text(PROFILE)
    base = ["upload-profile", str(path), "--gpu-name", "g", "--node", "n", "--spool-dir", str(tmp_path)]
    assert cli.main([*base, "--name", "x" * 201]) == 2
    assert "wattwise-agent: name: expected a non-empty string of at most 200 characters, got 'xxx" in \
        capsys.readouterr().err
    assert cli.main([*base, "--name", "p", "--p-blocking", "-5"]) == 2
    assert "p_blocking_w: expected a positive power in W below 10,000 W, or null, got -5.0" in capsys.readouterr().err
    assert cli.main([*base, "--name", "p", "--node", " "]) == 2
    assert "wattwise-agent: node: expected a non-empty string" in capsys.readouterr().err
    assert cli.main([*base[:1], str(tmp_path / "missing.csv"), *base[2:], "--name", "p"]) == 2
    assert "cannot read" in capsys.readouterr().err
    monkeypatch.delenv("WATTWISE_TOKEN")
    assert cli.main([*base, "--name", "p"]) == 2
    assert "WATTWISE_TOKEN" in capsys.readouterr().err
    assert memory_broker.envelopes == []


def test_while_the_broker_is_down_the_profile_waits_in_the_spool_and_goes_first_next_time() -> None:
    transport, spool = MemoryTransport(), MemorySpool()
    transport.available = False
    result = publish_stage_profile(transport, ProfileUpload("p", PROFILE, "NVIDIA A100"), token=TOKEN, node="n",
                                   spool=spool, drain_timeout_s=0)
    assert not result.sent and result.spooled == 1 and len(spool) == 1
    transport.available = True
    later = publish_stage_profile(transport, ProfileUpload("q", PROFILE, "NVIDIA A100"), token=TOKEN, node="n",
                                  spool=spool, drain_timeout_s=0)
    assert later.sent and later.spooled == 0
    names = [wire.open_envelope(e, "stage_profile", KEY)["name"] for e in transport.envelopes]
    assert names == ["p", "q"]


def test_the_agent_checks_a_profile_itself_without_the_planner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "planner.perseus", None)  # any import of the planner would fail
    check = check_profile_csv(PROFILE)
    assert check.num_stages == 2 and check.frequencies_mhz[0] == 1410 and check.rows == PROFILE.count("\n") - 1
    uneven = PROFILE.replace("\n1,backward,855,", "\n1,backward,856,")
    with pytest.raises(ProfileCsvError, match=r"stage 1 backward: profiled at other clocks than stage 0 forward "
                                              r"\(missing: 855 MHz; extra: 856 MHz\)"):
        check_profile_csv(uneven)
    with pytest.raises(ProfileCsvError, match="line 2: time 'nan' is not a finite number"):
        check_profile_csv("stage,instruction,frequency,time,energy\n0,forward,1410,nan,3\n")


HEADER = "stage,instruction,frequency,time,energy\n"
BOTH = "0,forward,1410,0.1,3\n0,backward,1410,0.2,4\n"


BAD_PROFILES = [
    "",
    "stage,instruction,frequency,time\n0,forward,1410,0.1\n",
    "stage,instruction,frequency,time,energy,energy\n0,forward,1410,0.1,3,3\n0,backward,1410,0.2,4,4\n",
    HEADER,
    HEADER + "0,forward,1410,0.1,3\n",
    HEADER + BOTH + "2,forward,1410,0.1,3\n2,backward,1410,0.2,4\n",
    HEADER + BOTH + "0,forward,1410,0.1,3\n",
    HEADER + BOTH + "1,forward,1410,0.1,3\n1,backward,1395,0.2,4\n",
    HEADER + BOTH.replace("0.1", "-0.1"),
    HEADER + BOTH.replace("0.1", "inf"),
    HEADER + BOTH.replace(",3\n", ",x\n"),
    HEADER + BOTH.replace("1410", "1410.5"),
    HEADER + BOTH.replace("1410", "0"),
    HEADER + BOTH.replace("forward", "sideways"),
    HEADER + BOTH.replace("0,", "-1,"),
    HEADER + BOTH.replace("0,", "1024,"),
    HEADER + "0,forward,1410,0.1\n",
]


@pytest.mark.parametrize("text", BAD_PROFILES)
def test_the_agent_refuses_every_profile_the_planner_refuses(text: str) -> None:
    with pytest.raises(ProfileCsvError):
        check_profile_csv(text)


@pytest.mark.app
@pytest.mark.parametrize("text", BAD_PROFILES)
def test_the_planner_refuses_each_of_those_profiles_too(text: str) -> None:
    from planner import perseus

    with pytest.raises(perseus.PlannerError):
        perseus.parse_profile(text)


@pytest.mark.app
def test_the_planner_reads_the_profile_these_tests_send_and_what_the_agent_merges_of_it() -> None:
    from planner import perseus

    parsed = perseus.parse_profile(PROFILE)
    check = check_profile_csv(PROFILE)
    assert (parsed.num_stages, parsed.frequencies_mhz) == (check.num_stages, check.frequencies_mhz)
    header, *rows = PROFILE.splitlines()
    stage_1_stopped_early = [r for r in rows if r.startswith("1,") and ",855," not in r]
    merged = merge_profile_csvs(["\n".join([header, *(r for r in rows if r.startswith("0,"))]) + "\n",
                                 "\n".join([header, *stage_1_stopped_early]) + "\n"])
    assert perseus.parse_profile(merged.csv).frequencies_mhz == check_profile_csv(merged.csv).frequencies_mhz
    assert check_profile_csv(merged.csv).frequencies_mhz[-1] == 870


def test_merging_refuses_a_stage_profiled_twice() -> None:
    with pytest.raises(ProfileCsvError, match=r"stage 0 forward at 1410 MHz is in both a\.csv and b\.csv"):
        merge_profile_csvs([PROFILE, PROFILE], sources=["a.csv", "b.csv"])

"""Run files: what a stream keeps on disk, checked whole before an upload sends any of it, and uploaded
signed with the token given then, body for body as recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.agents.support import KEY, TOKEN, batches, opened
from wattwise_agent import cli, wire
from wattwise_agent.backends.simulated import SimulatedBackend
from wattwise_agent.clock import VirtualClock
from wattwise_agent.run_file import RunFile, RunFileError, read_run_file
from wattwise_agent.run_upload import upload_run_file
from wattwise_agent.spool import MemorySpool
from wattwise_agent.streamer import Streamer
from wattwise_agent.transport import MemoryTransport, TokenRejected

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def record(path: Path, *, token: str | None = None, seconds: float = 20, run: str = "r") -> Streamer:
    """A simulated stream that only records, to ``path``."""
    recording = RunFile(path)
    streamer = Streamer(SimulatedBackend(2, node="n", seed=1), recording, run=run, token=token, node="n",
                        clock=VirtualClock(T0_MS), spool=MemorySpool(), zone="SE-SE3")
    streamer.run(seconds)
    streamer.close()
    recording.close()
    return streamer


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_recording_is_a_header_then_every_message_in_order_unsigned_without_a_token(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r.jsonl"
    record(path)
    header, *envelopes = lines(path)
    assert header["wattwise_run_file"] == 1 and "agent_version" in header
    assert [e["kind"] for e in envelopes] == ["open_run"] + ["batch"] * 4 + ["close_run"]
    assert all(set(e) == {"v", "kind", "node", "body"} for e in envelopes)
    assert (path.stat().st_mode & 0o777) == 0o600 and (path.parent.stat().st_mode & 0o777) == 0o700
    recording = read_run_file(path)
    assert recording.runs == ["r"] and recording.batches == 4 and recording.unclosed == []
    assert recording.samples == 2 * (20 * 10 + 1)


def test_an_upload_signs_each_message_with_the_token_and_keeps_every_body(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    record(path)
    transport = MemoryTransport()
    report = upload_run_file(path, transport, token=TOKEN)
    assert report.complete and report.sent == 6 and report.as_dict()["batches"] == 4
    recorded = [e["body"] for e in lines(path)[1:]]
    assert [e["body"] for e in transport.envelopes] == recorded  # the app's digests are the recording's
    assert all(e["key"] == wire.key_id(TOKEN) for e in transport.envelopes)
    assert [opened(e)["stream"] for e in transport.envelopes] == [json.loads(b)["stream"] for b in recorded]
    assert len(batches(transport.envelopes)) == 4  # signatures verify with the token's key, payloads decode
    # Uploading again sends the very same envelopes: the app stores (node, stream, seq) once.
    again = MemoryTransport()
    upload_run_file(path, again, token=TOKEN)
    assert again.envelopes == transport.envelopes


def test_messages_recorded_signed_with_another_token_are_signed_again(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    record(path, token="an-old-token-not-a-secret")
    assert all("sig" in e for e in lines(path)[1:])
    transport = MemoryTransport()
    upload_run_file(path, transport, token=TOKEN)
    for envelope in transport.envelopes:
        wire.open_envelope(envelope, envelope["kind"], KEY)


def test_stream_out_keeps_what_it_sends_and_the_stream_counts_it_as_sent(tmp_path: Path) -> None:
    path = tmp_path / "copy.jsonl"
    transport = MemoryTransport()
    recording = RunFile(path)
    streamer = Streamer(SimulatedBackend(1, node="n"), transport, run="r", token=TOKEN, node="n",
                        clock=VirtualClock(T0_MS), record=recording)
    streamer.run(10)
    summary = streamer.close()
    recording.close()
    assert lines(path)[1:] == transport.envelopes
    assert summary.batches_sent == 2 and summary.exit_line()["out"] == str(path)


def cut(path: Path, *, keep_bytes: int) -> Path:
    damaged = path.with_name("damaged.jsonl")
    damaged.write_bytes(path.read_bytes()[:keep_bytes])
    return damaged


def refusal(path: Path) -> str:
    transport = MemoryTransport()
    with pytest.raises(RunFileError) as caught:
        upload_run_file(path, transport, token=TOKEN)
    assert transport.envelopes == []  # nothing was sent
    return str(caught.value)


def test_a_file_cut_off_mid_line_is_refused_naming_the_line_and_how_to_keep_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    record(path)
    text = path.read_bytes()
    fourth_line_end = [i for i, b in enumerate(text) if b == ord("\n")][3]
    message = refusal(cut(path, keep_bytes=fourth_line_end - 10))
    assert ":4: the last line is cut off" in message and "head -n 3" in message and "nothing was sent" in message


def test_a_closed_stream_missing_batches_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    record(path)
    kept = path.read_text().splitlines()
    del kept[3]  # a batch in the middle
    damaged = tmp_path / "gap.jsonl"
    damaged.write_text("\n".join(kept) + "\n")
    message = refusal(damaged)
    assert "declares 4 batch(es)" in message and "the file holds 3" in message and "lines are missing" in message


def test_a_message_the_app_would_refuse_is_refused_with_the_wires_reason(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    record(path)
    kept = lines(path)
    body = json.loads(kept[2]["body"])
    body["gpus"][0]["util_pct"][3] = 4500
    kept[2]["body"] = json.dumps(body)
    damaged = tmp_path / "bad.jsonl"
    damaged.write_text("".join(json.dumps(line) + "\n" for line in kept))
    message = refusal(damaged)
    assert message == (f"{damaged}:3: batch message: gpus[0].util_pct[3]: expected whole numbers in [0, 100] "
                       "(wrong units?), got 4500; nothing was sent")


@pytest.mark.parametrize("text, reason", [
    ("", "is empty"),
    ('{"v": 1, "kind": "batch"}\n', "not a Wattwise run file"),
    ('{"wattwise_run_file": 2}\n', "run file format 2, this agent reads format 1: upgrade wattwise-agent"),
    ('{"wattwise_run_file": 1}\nnot json\n{"wattwise_run_file": 1}\n', ":2: not a JSON line"),
])
def test_what_is_not_a_run_file_is_refused_plainly(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text(text)
    assert reason in refusal(path)


def test_a_stream_that_never_closed_is_uploaded_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    record(path)
    kept = path.read_text().splitlines()[:-1]  # the process died before close_run
    path.write_text("\n".join(kept) + "\n")
    transport = MemoryTransport()
    report = upload_run_file(path, transport, token=TOKEN)
    assert report.sent == 5 and report.as_dict()["unclosed"] == [json.loads(lines(path)[1]["body"])["stream"]]


def test_a_rejected_token_stops_the_upload_and_says_how_far_it_got(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    record(path)

    class Rejecting(MemoryTransport):
        def send(self, envelope: dict[str, Any]) -> None:
            raise TokenRejected("unknown key")

    report = upload_run_file(path, Rejecting(), token=TOKEN)
    assert report.token_rejected == "unknown key" and report.sent == 0 and not report.complete


def test_an_app_that_goes_away_mid_upload_leaves_the_rest_unsent_and_says_how_much(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    recording = RunFile(path)
    streamer = Streamer(SimulatedBackend(1, node="n"), recording, run="r", token=None, node="n",
                        clock=VirtualClock(T0_MS), spool=MemorySpool(), window_s=1)
    streamer.run(150)  # 150 batches: more than one request's worth
    streamer.close()
    recording.close()

    class GoesAway(MemoryTransport):
        def send(self, envelope: dict[str, Any]) -> None:
            self.available = len(self.envelopes) < 70
            super().send(envelope)

    report = upload_run_file(path, GoesAway(), token=TOKEN, timeout_s=0)
    assert report.sent == 70 and report.unsent == 152 - 70 and not report.complete
    assert upload_run_file(path, MemoryTransport(), token=TOKEN).sent == 152  # again, whole: the app keeps each once


def test_stream_out_with_nowhere_to_send_records_without_a_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("WATTWISE_URL", "WATTWISE_BROKER_URL", "WATTWISE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "fast.jsonl"
    code = cli.main(["stream", "--backend", "simulated", "--run", "t", "--gpus", "2", "--duration", "30s", "--start",
                     "2026-01-01T00:00:00Z", "--fast", "--quiet", "--node", "sim-1", "--zone", "SE-SE3",
                     "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    line = json.loads(captured.out.strip().splitlines()[-1])
    assert line["batches_sent"] == 6 and line["samples_sent"] == 2 * (30 * 10 + 1) and line["out"] == str(out)
    assert line["emissions_g"] > 0 and set(line["energy_j"]) == {"GPU-SIM-sim-1-0", "GPU-SIM-sim-1-1"}
    assert f"send it with `wattwise-agent upload {out}`" in captured.err
    assert read_run_file(out).samples == line["samples_sent"]


def test_upload_without_a_token_or_a_destination_is_a_usage_error_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("WATTWISE_URL", "WATTWISE_BROKER_URL", "WATTWISE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "r.jsonl"
    record(path)
    assert cli.main(["upload", str(path)]) == 2
    assert "no token: the upload signs every message with it" in capsys.readouterr().err
    assert cli.main(["upload", str(path), "--token", TOKEN]) == 2
    assert "nowhere to send: set WATTWISE_URL" in capsys.readouterr().err
    assert cli.main(["upload", str(tmp_path / "missing.jsonl"), "--token", TOKEN]) == 2
    assert "cannot read" in capsys.readouterr().err

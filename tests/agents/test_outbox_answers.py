"""What the outbox does with each answer of the app: wait as long as it asks, set aside what it can never
accept, stop at a rejected token, and never lose an envelope."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.http_server import ScriptedApp, scripted_app
from tests.agents.support import TOKEN
from wattwise_agent import wire
from wattwise_agent.outbox import Outbox, signed_with
from wattwise_agent.spool import REFUSED_FILE, DiskSpool
from wattwise_agent.transport import HttpTransport

ROOT = Path(__file__).resolve().parents[2]


def env(n: int, token: str = TOKEN) -> dict[str, Any]:
    return wire.seal("batch", "node-1", {"n": n}, token, check=False)


def numbers(envelopes: list[dict[str, Any]]) -> list[int]:
    return [json.loads(e["body"])["n"] for e in envelopes]


@pytest.fixture
def app() -> Iterator[ScriptedApp]:
    with scripted_app() as running:
        yield running


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def outbox(app: ScriptedApp, spool_dir: Path, clock: Clock, **options: Any) -> Outbox:
    return Outbox(HttpTransport(app.url), DiskSpool(spool_dir), monotonic=clock.monotonic, sleep=clock.sleep,
                  **options)


def test_a_busy_app_is_left_alone_for_as_long_as_its_retry_after_says(app: ScriptedApp, tmp_path: Path) -> None:
    clock = Clock()
    box = outbox(app, tmp_path, clock)
    app.answer(429, {"detail": "ingest is behind"}, Retry_After="20")
    box.post(env(0))
    box.post(env(1))
    clock.now += 19.0
    box.post(env(2))
    assert len(app.received) == 1 and len(box.spool) == 3  # asked once, then waited
    clock.now += 1.0
    box.post(env(3))
    assert numbers(app.envelopes) == [0, 0, 1, 2, 3] and len(box.spool) == 0


def test_flush_waits_for_the_retry_after_within_its_timeout_and_not_beyond(app: ScriptedApp, tmp_path: Path) -> None:
    clock = Clock()
    box = outbox(app, tmp_path, clock)
    app.answer(503, {"detail": "broker unreachable"}, Retry_After="15")
    box.post(env(0))
    assert box.flush(10.0) == 1 and len(app.received) == 1 and sum(clock.slept) == 0  # 15 s is beyond 10 s
    assert box.flush(30.0) == 0 and sum(clock.slept) == pytest.approx(15.0)
    assert numbers(app.envelopes) == [0, 0]


def test_a_backlog_drains_several_envelopes_per_request(app: ScriptedApp, tmp_path: Path) -> None:
    clock = Clock()
    box = outbox(app, tmp_path, clock)
    app.answer(503, {}, Retry_After="1")
    for n in range(5):
        box.post(env(n))
    clock.now += 1.0
    assert box.drain() is True
    assert len(app.received) == 2 and app.received[1].body == [env(n) for n in range(5)]
    assert box.delivered == 5


def test_an_envelope_the_app_refuses_is_set_aside_with_the_reason_and_sending_goes_on(
    app: ScriptedApp, tmp_path: Path
) -> None:
    box = outbox(app, tmp_path, Clock())
    app.answer(202, {})
    app.answer(400, {"detail": "gpus[0].util_pct[3]: expected whole numbers in [0, 100] (wrong units?), got 4500"})
    for n in range(3):
        box.post(env(n))
    assert numbers(app.envelopes) == [0, 1, 2] and box.delivered == 2 and box.refused == 1
    lines = (tmp_path / REFUSED_FILE).read_text().splitlines()
    assert len(lines) == 1
    kept = json.loads(lines[0])
    assert kept["status"] == 400 and "got 4500" in kept["reason"] and kept["envelope"] == env(1)
    assert len(box.spool) == 0


def test_a_refused_list_is_sent_again_one_at_a_time_so_only_the_bad_envelope_is_set_aside(
    app: ScriptedApp, tmp_path: Path
) -> None:
    clock = Clock()
    box = outbox(app, tmp_path, clock)
    app.answer(503, {}, Retry_After="1")
    for n in range(3):
        box.post(env(n))
    app.answer(400, {"detail": "envelope 1: bad", "index": 1})  # the list
    app.answer(202, {})
    app.answer(400, {"detail": "bad"})  # envelope 1 on its own
    clock.now += 1.0
    assert box.drain() is True
    assert [len(r.body) if isinstance(r.body, list) else 1 for r in app.received] == [1, 3, 1, 1, 1]
    assert box.delivered == 2 and box.refused == 1
    assert json.loads((tmp_path / REFUSED_FILE).read_text())["envelope"] == env(1)


def test_a_rejected_token_stops_sending_and_keeps_every_envelope_spooled(app: ScriptedApp, tmp_path: Path) -> None:
    clock = Clock()
    box = outbox(app, tmp_path, clock)
    app.answer(401, {"detail": "unknown key 0123456789abcdef (node 'node-1')"})
    for n in range(4):
        box.post(env(n))
    clock.now += 3600
    assert box.drain(force=True) is False and box.flush(60.0) == 4
    assert len(app.received) == 1 and box.fatal is not None
    assert box.fatal.reason == "unknown key 0123456789abcdef (node 'node-1')"
    assert numbers([json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]) == [0, 1, 2, 3]


def test_envelopes_spooled_under_an_old_token_are_sent_signed_with_the_new_one(app: ScriptedApp, tmp_path: Path) -> None:
    old, new = "the-token-that-was-rejected", "the-rotated-token"
    spool = DiskSpool(tmp_path)
    spool.put(env(0, old))
    spool.put(env(1, new))
    box = Outbox(HttpTransport(app.url), spool, reseal=signed_with(new))
    assert box.flush(5.0) == 0
    sent = app.envelopes
    assert numbers(sent) == [0, 1] and {e["key"] for e in sent} == {wire.key_id(new)}
    for envelope in sent:
        wire.open_envelope(envelope, "batch", wire.signing_key(new))  # raises unless the new token signed it
    assert sent[0]["body"] == env(0, old)["body"]  # the same message, only signed again


def test_the_stream_command_stops_at_a_rejected_token_and_exits_3_saying_so(app: ScriptedApp, tmp_path: Path) -> None:
    app.answer(401, {"detail": "unknown key 0123456789abcdef (node 'n1'): no node or enrolment token has this token"})
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    environment.update(WATTWISE_TOKEN=TOKEN, WATTWISE_URL=app.url)
    result = subprocess.run(
        [sys.executable, "-m", "wattwise_agent", "stream", "--backend", "simulated", "--run", "r", "--node", "n1",
         "--duration", "10m", "--fast", "--quiet", "--spool-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, env=environment, timeout=60,
    )
    assert result.returncode == 3
    assert "wattwise-agent: token rejected (401): unknown key 0123456789abcdef (node 'n1')" in result.stderr
    line = json.loads(result.stdout)
    assert line["batches_sent"] == 0 and line["spooled"] == len(list(tmp_path.glob("*.json")))
    kinds = [json.loads(p.read_text())["kind"] for p in sorted(tmp_path.glob("*.json"))]
    # Sampling stopped at once: the open, what was sampled before the answer, and the close; not 10 minutes.
    assert kinds[0] == "open_run" and kinds[-1] == "close_run" and len(kinds) < 120
    assert len(app.received) == 1


@pytest.mark.parametrize(("variables", "words"), [
    ({"WATTWISE_URL": "http://127.0.0.1:9", "WATTWISE_BROKER_URL": "redis://127.0.0.1:6379/0"},
     "both the app's URL (http://127.0.0.1:9) and a broker (redis://127.0.0.1:6379/0) are set: choose one"),
    ({}, "nowhere to send: set WATTWISE_URL to the app's URL (e.g. https://wattwise.example.org) or pass --url"),
])
def test_stream_and_upload_profile_say_where_to_send_when_unclear(variables: dict[str, str], words: str,
                                                                  tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    environment.update(WATTWISE_TOKEN=TOKEN, **variables)
    profile = tmp_path / "p.csv"
    profile.write_text("stage,instruction,frequency,time,energy\n")
    for command in (["stream", "--backend", "simulated", "--run", "r", "--duration", "1s", "--fast"],
                    ["upload-profile", str(profile), "--name", "p", "--gpu-name", "A100"]):
        result = subprocess.run([sys.executable, "-m", "wattwise_agent", *command, "--spool-dir", str(tmp_path / "s")],
                                capture_output=True, text=True, cwd=ROOT, env=environment, timeout=60)
        assert result.returncode == 2 and words in result.stderr, (command, result.stderr)


def test_envelopes_posted_together_go_in_one_request_or_all_to_the_spool(app: ScriptedApp, tmp_path: Path) -> None:
    clock = Clock()
    box = outbox(app, tmp_path, clock)
    box.post_many([env(n) for n in range(3)])
    assert [r.body for r in app.received] == [[env(0), env(1), env(2)]] and box.delivered == 3
    app.answer(429, {"detail": "ingest is behind"}, Retry_After="5")
    box.post_many([env(n) for n in range(3, 6)])
    assert len(app.received) == 2 and numbers([json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]) \
        == [3, 4, 5]
    clock.now += 5
    box.post_many([env(6)])  # after the spool, in order
    assert numbers(app.envelopes[-4:]) == [3, 4, 5, 6] and len(box.spool) == 0


def test_drain_sends_what_the_spool_holds_signed_with_the_current_token_and_exits(app: ScriptedApp,
                                                                                  tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path)
    for n in range(3):
        spool.put(env(n, "the-old-token"))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    environment.update(WATTWISE_TOKEN=TOKEN, WATTWISE_URL=app.url)
    result = subprocess.run([sys.executable, "-m", "wattwise_agent", "drain", "--node", "node-1", "--spool-dir", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, env=environment, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"node": "node-1", "spool": str(tmp_path), "sent": 3, "spooled": 0,
                                         "refused": 0}
    assert len(app.received) == 1 and numbers(app.envelopes) == [0, 1, 2]
    assert {e["key"] for e in app.envelopes} == {wire.key_id(TOKEN)} and len(spool) == 0
    app.answer(401, {"detail": "unknown key"})
    spool.put(env(3))
    result = subprocess.run([sys.executable, "-m", "wattwise_agent", "drain", "--node", "node-1", "--spool-dir", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, env=environment, timeout=60)
    assert result.returncode == 3 and "token rejected (401): unknown key" in result.stderr and len(spool) == 1

"""The spool: nothing is lost while the broker is down, and everything arrives in order afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.agents.support import (
    TOKEN,
    RedisServer,
    free_port,
    opened,
    queued_envelopes,
    require_redis_server,
)
from wattwise_agent import wire
from wattwise_agent.backends.simulated import SimulatedBackend
from wattwise_agent.clock import RealClock
from wattwise_agent.outbox import Outbox
from wattwise_agent.spool import DiskSpool
from wattwise_agent.streamer import Streamer
from wattwise_agent.transport import CeleryTransport, MemoryTransport

ROOT = Path(__file__).resolve().parents[2]


def env(n: int) -> dict[str, Any]:
    return wire.seal("batch", "n", {"n": n}, TOKEN, check=False)  # the spool keeps envelopes whatever they hold


def wait_for(condition: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_disk_spool_keeps_order_across_agent_restarts(tmp_path: Path) -> None:
    first = DiskSpool(tmp_path)
    for n in range(3):
        first.put(env(n))
    second = DiskSpool(tmp_path)  # a later run of the agent
    second.put(env(3))
    sent: list[dict[str, Any]] = []
    assert second.drain(sent.append) == 4
    assert [json.loads(e["body"])["n"] for e in sent] == [0, 1, 2, 3]
    assert len(second) == 0


def test_spool_files_are_whole_and_no_temporary_files_remain(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path)
    spool.put(env(0))
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != ".lock")
    assert names == ["0000000000000001.json"]
    assert json.loads((tmp_path / names[0]).read_text()) == env(0)


def test_an_unreadable_spool_file_is_set_aside_and_does_not_block_the_queue(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path)
    spool.put(env(0))
    spool.put(env(1))
    (tmp_path / "0000000000000001.json").write_text("{truncated")
    sent: list[dict[str, Any]] = []
    spool.drain(sent.append)
    assert [json.loads(e["body"])["n"] for e in sent] == [1]
    assert (tmp_path / "bad" / "0000000000000001.json").exists()


def test_a_failed_send_leaves_the_envelope_in_the_spool(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path)
    spool.put(env(0))
    down = MemoryTransport()
    down.available = False
    outbox = Outbox(down, spool)
    assert outbox.drain(force=True) is False
    assert len(spool) == 1


def test_while_the_transport_is_down_envelopes_spool_and_replay_in_order_before_new_ones(tmp_path: Path) -> None:
    transport = MemoryTransport()
    now = [0.0]
    outbox = Outbox(transport, DiskSpool(tmp_path), retry_min_s=1.0, monotonic=lambda: now[0])
    outbox.post(env(0))
    transport.available = False
    for n in (1, 2, 3):
        outbox.post(env(n))  # the first attempt fails, the rest wait for the back-off
    assert len(outbox.spool) == 3
    transport.available = True
    outbox.post(env(4))  # within the back-off: queued behind the spool, not sent ahead of it
    assert [json.loads(e["body"])["n"] for e in transport.envelopes] == [0]
    now[0] = 5.0
    outbox.post(env(5))
    assert [json.loads(e["body"])["n"] for e in transport.envelopes] == [0, 1, 2, 3, 4, 5]
    assert len(outbox.spool) == 0


def check_complete_stream(envelopes: list[dict[str, Any]], summary_samples: int) -> int:
    payloads = [(e["kind"], opened(e)) for e in envelopes]
    assert payloads[0][0] == "open_run" and payloads[-1][0] == "close_run"
    seqs = [p["seq"] for kind, p in payloads if kind == "batch"]
    assert seqs == list(range(len(seqs))), "batches missing, duplicated or out of order"
    assert payloads[-1][1]["last_seq"] == seqs[-1]
    samples = sum(wire.decode_batch(p).samples for kind, p in payloads if kind == "batch")
    assert samples == payloads[-1][1]["samples_sent"] == summary_samples
    return len(seqs)


def test_broker_down_for_a_while_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    server = RedisServer(require_redis_server(), free_port(), durable_dir=str(tmp_path / "redis"))
    os.makedirs(server.durable_dir or "", exist_ok=True)
    server.start()
    spool = DiskSpool(tmp_path / "spool")
    backend = SimulatedBackend(2, node="n", seed=1)
    streamer = Streamer(backend, CeleryTransport(server.url, connect_timeout_s=0.5), run="outage", token=TOKEN,
                        node="n", clock=RealClock(), rate_hz=20, window_s=0.25, spool=spool, retry_min_s=0.2)
    stop = threading.Event()
    sampler = threading.Thread(target=streamer.run, kwargs={"stop": stop})
    sampler.start()
    try:
        assert wait_for(lambda: server.client().llen(wire.TELEMETRY_QUEUE) >= 3)
        server.stop()  # SIGKILL, mid-run
        assert wait_for(lambda: len(spool) >= 3), "envelopes should spool while the broker is down"
        time.sleep(0.5)
        server.start()  # same port, same data (append-only file)
        assert wait_for(lambda: len(spool) == 0), "the spool should drain once the broker is back"
        time.sleep(0.3)
    finally:
        stop.set()
        sampler.join()
    summary = streamer.close()
    try:
        received = queued_envelopes(server)
    finally:
        server.stop()
    assert summary.spooled == 0
    assert summary.batches_sent == check_complete_stream(received, summary.samples_sent)
    assert summary.samples_sent == summary.samples_read


def run_agent(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "WATTWISE_TOKEN": TOKEN}
    return subprocess.run([sys.executable, "-m", "wattwise_agent", "stream", *args], capture_output=True, text=True,
                          cwd=ROOT, env=environment, timeout=60)


def test_at_exit_with_the_broker_down_envelopes_stay_on_disk_and_the_next_run_sends_them_first(
    tmp_path: Path,
) -> None:
    server = RedisServer(require_redis_server(), free_port())
    common = ["--backend", "simulated", "--gpus", "1", "--duration", "10s", "--fast", "--quiet",
              "--broker", server.url, "--spool-dir", str(tmp_path), "--node", "n", "--drain-timeout", "0.3s"]
    first = run_agent("--run", "first", "--start", "2026-01-01T00:00:00Z", *common)
    assert first.returncode == 0, first.stderr
    line = json.loads(first.stdout.strip().splitlines()[-1])
    assert line["samples_sent"] == 0 and line["batches_sent"] == 0
    assert line["spooled"] == 4  # open_run, two windows, close_run
    assert "4 envelope(s) left in the spool" in first.stderr
    assert TOKEN not in first.stdout + first.stderr
    server.start()
    try:
        second = run_agent("--run", "second", "--start", "2026-01-02T00:00:00Z", *common)
        assert second.returncode == 0, second.stderr
        received = queued_envelopes(server)
    finally:
        server.stop()
    line2 = json.loads(second.stdout.strip().splitlines()[-1])
    assert line2["spooled"] == 0 and line2["samples_sent"] == 101
    runs = [opened(e)["run"] for e in received]
    assert runs == ["first"] * 4 + ["second"] * 4
    check_complete_stream(received[:4], 101)
    check_complete_stream(received[4:], 101)

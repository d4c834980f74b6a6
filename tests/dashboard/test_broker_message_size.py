"""A message on the Redis broker above WATTWISE_BROKER_MAX_MESSAGE_BYTES (16 MiB) is refused by a real worker
before it is read (dashboard/broker.py): the worker's peak memory barely moves, the admin sees a
``too_large`` rejection with its size, and the messages after it are consumed as usual."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from dashboard import broker
from dashboard.telemetry.models import BatchReceipt, Rejection
from tests.factories import register, simple_batch
from tests.worker_process import flush, publisher, wait_until, worker
from wattwise_agent import wire
from wattwise_agent.transport import CeleryTransport

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.processes]

MIB = 1024 * 1024


def memory_kib(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # Linux: VmHWM starts again from VmRSS


def send_batch(redis_url: str, node, seq: int) -> None:
    transport = CeleryTransport(redis_url)
    transport.send(simple_batch(node, seq=seq))
    transport.close()


def test_a_64_mib_message_is_refused_unread_and_the_worker_keeps_consuming(postgres, redis_url):
    flush(redis_url)
    node = register("node-a", "vision")
    with worker(redis_url) as process:
        send_batch(redis_url, node, 0)  # the worker warmed up: modules loaded, connections open
        wait_until(lambda: BatchReceipt.objects.count() == 1, 60, "the first batch", process)
        baseline_kib = memory_kib(process.pid, "VmRSS")
        reset_peak(process.pid)

        huge = {"v": 1, "kind": wire.KIND_BATCH, "node": "node-a", "body": "x" * (64 * MIB), "sig": ""}
        publisher(redis_url).send_task(wire.TASKS_BY_KIND[wire.KIND_BATCH], args=[huge], queue=wire.TELEMETRY_QUEUE)
        del huge
        wait_until(lambda: Rejection.objects.exists(), 60, "the refusal to be recorded", process)
        send_batch(redis_url, node, 1)
        wait_until(lambda: BatchReceipt.objects.count() == 2, 60, "the batch sent after it", process)
        growth_mb = (memory_kib(process.pid, "VmHWM") - baseline_kib) / 1024

    assert growth_mb < 50, f"the worker's peak memory grew by {growth_mb:.0f} MB"
    rejection = Rejection.objects.get()
    assert (rejection.reason_code, rejection.kind) == ("too_large", "request")
    assert rejection.size_bytes > 64 * MIB
    assert "WATTWISE_BROKER_MAX_MESSAGE_BYTES" in rejection.reason and "'telemetry'" in rejection.reason
    assert redis.Redis.from_url(redis_url).llen(wire.TELEMETRY_QUEUE) == 0  # consumed, not left for redelivery


def test_replies_under_the_limit_are_read_as_redis_py_reads_them(redis_url, settings):
    """The parser's other replies, through a real connection: the redis-py internals it relies on still hold."""
    settings.WATTWISE_BROKER_MAX_MESSAGE_BYTES = 1024
    client = redis.Redis.from_url(redis_url, protocol=2, parser_class=broker.SizeLimitedParser)
    client.delete("h5-size", "h5-list")
    client.rpush("h5-list", b"a" * 1024, b"b" * 1025, json.dumps({"n": 1}))
    assert client.lrange("h5-list", 0, -1) == [b"a" * 1024, broker.TooLargeReply(1025), b'{"n": 1}']
    assert client.ping() is True and client.llen("h5-list") == 3  # the connection is still in step
    client.delete("h5-list")

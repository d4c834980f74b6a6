"""The coalescing consumer (``manage.py consume_telemetry``) takes every message waiting on Redis and stores
their batches as one unit of work: each message acknowledged only after its batch is committed, a bad one
refused alone, a redelivered group a no-op."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import redis
from kombu import Connection

from dashboard.telemetry import consumer
from dashboard.telemetry.models import BatchReceipt, Rejection, Run, RunGpu
from dashboard.telemetry.redis_queue import RedisQueue
from tests import worker_process
from tests.dashboard.telemetry.http_support import celery_on_broker, post
from tests.factories import T0_MS, envelope, register, simple_batch
from tests.worker_process import ROOT, flush, wait_until
from wattwise_agent.transport import CeleryTransport
from wattwise_agent.wire import TELEMETRY_QUEUE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.processes]


def publish(redis_url: str, envelopes: list[dict]) -> None:
    transport = CeleryTransport(redis_url)
    for message in envelopes:
        transport.send(message)
    transport.close()


@pytest.fixture(params=["redis", "kombu"])
def consume(request, settings):
    """Consume what waits on Redis until nothing does: many messages a round trip (what the command does on
    Redis), or through kombu's transport (any other broker)."""

    def consume(redis_url: str, **bounds: int) -> dict[str, int]:
        if request.param == "redis":
            queue = RedisQueue(redis.Redis.from_url(redis_url), TELEMETRY_QUEUE,
                               max_message_bytes=settings.WATTWISE_BROKER_MAX_MESSAGE_BYTES)
            return consumer.consume_redis(queue, until_idle=True, **bounds)
        with Connection(redis_url) as connection:
            return consumer.consume(connection, idle_s=0.5, until_idle=True, **bounds)

    return consume


def left_on_the_broker(redis_url: str) -> tuple[int, int]:
    """(messages waiting, messages handed out and not acknowledged)."""
    client = redis.Redis.from_url(redis_url)
    return int(client.llen(TELEMETRY_QUEUE)), int(client.hlen("unacked"))


def test_every_message_waiting_is_stored_and_acknowledged_and_a_bad_one_refused_alone(postgres, redis_url, consume):
    flush(redis_url)
    node, other = register("node-a"), register("node-b")
    forged = simple_batch(other, seq=1)
    forged["sig"] = "0" * len(forged["sig"])
    opening = envelope(node, {"run": "run-1", "stream": "s1", "started_ms": T0_MS, "simulated": False,
                              "backend": "nvml", "host": node.name, "tags": [], "gpus": []}, kind="open_run")
    publish(redis_url, [opening, *(simple_batch(node, seq=seq) for seq in range(6)), forged,
                        simple_batch(other, seq=0)])
    counts = consume(redis_url, max_messages=4)  # bounded: three groups
    assert counts == {"opened": 1, "stored": 7, "rejected": 1}
    assert BatchReceipt.objects.count() == 7
    assert list(Rejection.objects.values_list("reason_code", flat=True)) == [Rejection.Code.BAD_SIGNATURE]
    assert Run.objects.get().status == Run.Status.RUNNING
    assert left_on_the_broker(redis_url) == (0, 0)


def test_a_redelivered_group_is_a_no_op(postgres, redis_url, consume):
    flush(redis_url)
    node = register()
    messages = [simple_batch(node, seq=seq) for seq in range(5)]
    publish(redis_url, messages)
    assert consume(redis_url) == {"stored": 5}
    energy_j = RunGpu.objects.get().energy_j
    publish(redis_url, messages)  # a consumer killed before it acknowledged: the transport delivers them again
    assert consume(redis_url) == {"duplicate": 5}
    assert BatchReceipt.objects.count() == 5 and RunGpu.objects.get().energy_j == energy_j
    assert not Rejection.objects.exists() and left_on_the_broker(redis_url) == (0, 0)


def test_what_the_http_ingest_queued_is_stored_together(postgres, redis_url, client, consume):
    flush(redis_url)
    node = register()
    with celery_on_broker(redis_url):
        answer = post(client, [simple_batch(node, seq=seq) for seq in range(8)])
    assert answer.status_code == 202 and answer.json() == {"queued": 8}
    assert left_on_the_broker(redis_url) == (8, 0)
    assert consume(redis_url) == {"stored": 8}
    assert BatchReceipt.objects.count() == 8 and left_on_the_broker(redis_url) == (0, 0)


def test_a_message_too_large_is_refused_unread_and_the_rest_stored(postgres, redis_url, settings):
    flush(redis_url)
    node = register()
    settings.WATTWISE_BROKER_MAX_MESSAGE_BYTES = 20_000
    publish(redis_url, [simple_batch(node, seq=0), simple_batch(node, seq=1, samples=600), simple_batch(node, seq=2)])
    queue = RedisQueue(redis.Redis.from_url(redis_url), TELEMETRY_QUEUE, max_message_bytes=20_000)
    assert consumer.consume_redis(queue, until_idle=True) == {"stored": 2}
    refused = Rejection.objects.get()
    assert refused.reason_code == Rejection.Code.TOO_LARGE and "refused unread" in refused.reason
    assert set(BatchReceipt.objects.values_list("seq", flat=True)) == {0, 2}
    assert left_on_the_broker(redis_url) == (0, 0)


def test_messages_a_consumer_took_and_never_acknowledged_come_back_after_the_visibility_timeout(postgres, redis_url):
    flush(redis_url)
    node = register()
    publish(redis_url, [simple_batch(node, seq=seq) for seq in range(3)])
    queue = RedisQueue(redis.Redis.from_url(redis_url), TELEMETRY_QUEUE, max_message_bytes=10**7)
    assert len(queue.take(10, 10**9)) == 3  # then the consumer dies
    assert left_on_the_broker(redis_url) == (0, 3)
    with Connection(redis_url, transport_options={"visibility_timeout": 0}) as connection:
        connection.default_channel.qos.restore_visible(num=100, interval=1)  # what kombu runs in every consumer
    assert left_on_the_broker(redis_url) == (3, 0)
    assert consumer.consume_redis(queue, until_idle=True) == {"stored": 3}


def test_the_command_stores_what_waits_and_stops_on_sigterm(postgres, redis_url, tmp_path):
    flush(redis_url)
    node = register()
    publish(redis_url, [simple_batch(node, seq=seq) for seq in range(4)])
    ready = tmp_path / "ready"
    env = {**os.environ, "DATABASE_URL": worker_process.test_database_url(), "CELERY_BROKER_URL": redis_url,
           "DATABASE_CONN_MAX_AGE": "0"}
    process = subprocess.Popen([sys.executable, "manage.py", "consume_telemetry", "--ready-file", str(ready)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        wait_until(lambda: BatchReceipt.objects.count() == 4, 60, "the batches to be stored", process)
        assert ready.exists()
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and "stopped: 4 stored" in output
    assert not ready.exists()  # a stopped consumer is not ready: a stale file would read as healthy
    assert left_on_the_broker(redis_url) == (0, 0)


def test_a_message_that_cannot_be_decoded_is_refused_and_the_rest_stored(postgres, redis_url, consume):
    """Another content type on the queue must not stop the consumer (it would come back to stop the next)."""
    from kombu import Producer

    flush(redis_url)
    node = register("node-a")
    publish(redis_url, [simple_batch(node, seq=0)])
    queue = consumer._telemetry_queue()
    with Connection(redis_url) as connection:
        Producer(connection).publish(b"\x80 not json", exchange=queue.exchange, routing_key=queue.routing_key,
                                     declare=[queue], content_type="application/x-octet", content_encoding="binary")
    publish(redis_url, [simple_batch(node, seq=1)])
    counts = consume(redis_url)
    assert counts.get("stored") == 2
    assert Rejection.objects.filter(kind=Rejection.Kind.REQUEST).count() == 1
    assert left_on_the_broker(redis_url) == (0, 0)

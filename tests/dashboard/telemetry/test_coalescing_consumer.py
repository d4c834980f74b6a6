"""The coalescing consumer (``manage.py consume_telemetry``) takes every message waiting on Redis and stores
their batches as one unit of work: each message acknowledged only after its batch is committed, a bad one
refused alone, a redelivered group a no-op."""

from __future__ import annotations

import pytest
import redis
from kombu import Connection

from dashboard.telemetry import consumer
from dashboard.telemetry.models import BatchReceipt, Rejection, Run, RunGpu
from tests.dashboard.telemetry.http_support import celery_on_broker, post
from tests.factories import T0_MS, envelope, register, simple_batch
from tests.worker_process import flush
from wattwise_agent.transport import CeleryTransport
from wattwise_agent.wire import TELEMETRY_QUEUE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def publish(redis_url: str, envelopes: list[dict]) -> None:
    transport = CeleryTransport(redis_url)
    for message in envelopes:
        transport.send(message)
    transport.close()


def consume(redis_url: str, **bounds: int) -> dict[str, int]:
    with Connection(redis_url) as connection:
        return consumer.consume(connection, idle_s=0.5, until_idle=True, **bounds)


def left_on_the_broker(redis_url: str) -> tuple[int, int]:
    """(messages waiting, messages handed out and not acknowledged)."""
    client = redis.Redis.from_url(redis_url)
    return int(client.llen(TELEMETRY_QUEUE)), int(client.hlen("unacked"))


def test_every_message_waiting_is_stored_and_acknowledged_and_a_bad_one_refused_alone(postgres, redis_url):
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


def test_a_redelivered_group_is_a_no_op(postgres, redis_url):
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


def test_a_requests_list_of_batches_goes_as_one_message_and_is_stored(postgres, redis_url, client):
    flush(redis_url)
    node = register()
    with celery_on_broker(redis_url):
        answer = post(client, [simple_batch(node, seq=seq) for seq in range(8)])
    assert answer.status_code == 202 and answer.json() == {"queued": 8}
    assert left_on_the_broker(redis_url) == (1, 0)
    assert consume(redis_url) == {"stored": 8}
    assert BatchReceipt.objects.count() == 8 and left_on_the_broker(redis_url) == (0, 0)


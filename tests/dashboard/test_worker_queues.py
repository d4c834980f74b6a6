"""A plain ``celery -A dashboard worker`` (no ``-Q``) consumes every queue the app uses: what agents publish
on ``telemetry`` and the app's own tasks on ``celery``; ``-Q`` still narrows a worker to some of them. On
RabbitMQ, the queues it declares are where a node whose user may only publish telemetry sends."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.celery import app
from dashboard.projects.models import ApiToken
from dashboard.projects.tokens import issue_token
from dashboard.telemetry.models import BatchReceipt
from tests.broker_users import rabbitmq_vhost
from tests.factories import member, register, simple_batch
from tests.worker_process import flush, publisher, wait_until, worker
from wattwise_agent import wire
from wattwise_agent.transport import CeleryTransport

USED_AT = "2026-01-01T00:00:00+00:00"


def test_the_app_declares_every_queue_it_routes_to():
    queues = app.amqp.queues
    assert set(queues) == {"celery", "telemetry"}
    for name, queue in queues.items():
        # As Celery makes a queue for a route, and where the agent's broker transport publishes.
        assert (queue.exchange.name, queue.exchange.type, queue.routing_key) == (name, "direct", name)
    for task in wire.TASKS_BY_KIND.values():
        assert app.amqp.router.route({}, task)["queue"].name == wire.TELEMETRY_QUEUE
    assert app.amqp.router.route({}, "projects.record_token_use")["queue"].name == "celery"


def publish_one_of_each(redis_url: str) -> ApiToken:
    """A batch on ``telemetry`` as the agent's transport sends it; an app task on ``celery``."""
    transport = CeleryTransport(redis_url)
    transport.send(simple_batch(register("node-a", "vision")))
    transport.close()
    issue_token(member("ana", "vision"))
    token = ApiToken.objects.get()
    publisher(redis_url).send_task("projects.record_token_use", args=[token.pk, USED_AT], queue="celery")
    return token


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_a_plain_worker_consumes_the_telemetry_an_agent_published_and_the_apps_tasks(postgres, redis_url):
    flush(redis_url)
    token = publish_one_of_each(redis_url)
    with worker(redis_url) as process:
        wait_until(lambda: BatchReceipt.objects.exists(), 60, "the agent's batch to be stored", process)
        wait_until(lambda: ApiToken.objects.get(pk=token.pk).last_used_at is not None, 60, "the app task", process)
    assert BatchReceipt.objects.get().samples == 10


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_q_still_narrows_a_worker_to_the_queues_named(postgres, redis_url):
    import redis

    flush(redis_url)
    token = publish_one_of_each(redis_url)
    with worker(redis_url, queues="celery") as process:
        wait_until(lambda: ApiToken.objects.get(pk=token.pk).last_used_at is not None, 60, "the app task", process)
    # The batch waits on its queue for a worker that consumes it.
    assert redis.Redis.from_url(redis_url).llen(wire.TELEMETRY_QUEUE) == 1
    assert not BatchReceipt.objects.exists()


def exchange_exists(url: str, name: str) -> bool:
    from kombu import Connection

    with Connection(url) as connection:
        channel: Any = connection.default_channel
        try:
            channel.exchange_declare(name, "direct", passive=True)
        except connection.channel_errors:
            return False
    return True


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_on_rabbitmq_a_node_that_may_only_publish_telemetry_feeds_a_plain_worker(postgres):
    with rabbitmq_vhost() as vhost, worker(vhost.admin_url) as process:
        wait_until(lambda: exchange_exists(vhost.admin_url, wire.TELEMETRY_QUEUE), 60,
                   "the worker to declare its queues", process)
        transport = CeleryTransport(vhost.node_url)
        transport.send(simple_batch(register("node-a", "vision")))
        transport.close()
        wait_until(lambda: BatchReceipt.objects.exists(), 60, "the node's batch to be stored", process)
    assert BatchReceipt.objects.get().samples == 10

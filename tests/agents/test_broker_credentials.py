"""The broker transport on a trusted network, with a node's own limited credentials (docs/agent.md): the
agent's ``CeleryTransport`` publishes telemetry with them, and they can do nothing else: not read or
consume anyone's messages, not publish to another queue, not create, bind, purge or delete, not flush."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from tests.agents.support import TOKEN, RedisServer, queued_envelopes
from tests.broker_users import RabbitVhost, rabbitmq_vhost, redis_node_user
from wattwise_agent import wire
from wattwise_agent.transport import CeleryTransport, TransportUnavailable


def envelopes() -> list[dict[str, Any]]:
    return [
        wire.seal("open_run", "node-a", {"run": "r", "stream": "s", "started_ms": 1}, TOKEN),
        wire.seal("batch", "node-a", {"run": "r", "stream": "s", "seq": 0, "gpus": []}, TOKEN, check=False),
        wire.seal("close_run", "node-a", {"run": "r", "stream": "s", "ended_ms": 2, "last_seq": 0}, TOKEN),
    ]


def allowed(actions: Mapping[str, Callable[[], object]], refusal: type[BaseException]) -> list[str]:
    """The actions the broker let through (each should have raised ``refusal``)."""
    done = []
    for what, action in actions.items():
        try:
            action()
        except refusal:
            continue
        done.append(what)
    return done


def send_all(url: str, sent: list[dict[str, Any]], **options: Any) -> None:
    transport = CeleryTransport(url, **options)
    try:
        for envelope in sent:
            transport.send(envelope)
    finally:
        transport.close()


# --- Redis: an ACL user ------------------------------------------------------------------------------------


def test_a_redis_node_user_publishes_telemetry_with_the_agents_transport(redis_server: RedisServer) -> None:
    node_url = redis_node_user(redis_server.client(), redis_server.port)
    sent = envelopes()
    send_all(node_url, sent)
    # Exactly the Celery task messages a worker consuming "telemetry" runs (see test_celery_transport).
    assert queued_envelopes(redis_server) == sent


def test_a_redis_node_user_can_do_nothing_else(redis_server: RedisServer) -> None:
    import redis

    admin = redis_server.client()
    admin.lpush("celery", "an app task")
    admin.set("other", "secret")
    node_url = redis_node_user(admin, redis_server.port)
    send_all(node_url, envelopes()[:1])
    node = redis.Redis.from_url(node_url)
    refused: dict[str, Callable[[], object]] = {
        "FLUSHALL": node.flushall,
        "FLUSHDB": node.flushdb,
        "GET another key": lambda: node.get("other"),
        "LPUSH onto the celery queue": lambda: node.lpush("celery", "forged"),
        "RPOP (take a message)": lambda: node.rpop(wire.TELEMETRY_QUEUE),
        "BRPOP (consume)": lambda: node.brpop([wire.TELEMETRY_QUEUE], timeout=1),
        "LRANGE (read messages)": lambda: node.lrange(wire.TELEMETRY_QUEUE, 0, -1),
        "DEL the queue": lambda: node.delete(wire.TELEMETRY_QUEUE),
        "SADD a binding": lambda: node.sadd("_kombu.binding.telemetry", "telemetry\x06\x16\x06\x16celery"),
        "KEYS": lambda: node.keys("*"),
        "PUBLISH": lambda: node.publish("channel", "x"),
        "CONFIG SET": lambda: node.config_set("appendonly", "no"),
        "ACL SETUSER": lambda: node.execute_command("ACL", "SETUSER", "wattwise-node-01", "+@all"),
    }
    assert allowed(refused, redis.exceptions.NoPermissionError) == []
    # The agent's own transport, pointed at another queue, is refused too: it keeps the envelope to retry.
    with pytest.raises(TransportUnavailable, match="no permissions"):
        send_all(node_url, envelopes()[:1], queue="celery")
    assert admin.lrange("celery", 0, -1) == [b"an app task"]
    assert admin.get("other") == b"secret"
    assert admin.llen(wire.TELEMETRY_QUEUE) == 1


# --- RabbitMQ: a user with per-vhost permissions ------------------------------------------------------------


@pytest.fixture
def vhost() -> Iterator[RabbitVhost]:
    with rabbitmq_vhost() as made:
        yield made


def declare_as_the_app_does(url: str) -> None:
    """The queues as the app's workers declare them on start (CELERY_TASK_QUEUES: a direct exchange and a
    routing key of each queue's name; tests/dashboard/test_worker_queues.py checks the app says so)."""
    from kombu import Connection, Exchange, Queue

    with Connection(url) as connection:
        for name in ("celery", wire.TELEMETRY_QUEUE):
            Queue(name, Exchange(name, type="direct"), routing_key=name)(connection.default_channel).declare()


def take_all(url: str, queue: str) -> list[Any]:
    from kombu import Connection, Queue

    taken = []
    with Connection(url) as connection:
        bound = Queue(queue, no_declare=True)(connection.default_channel)
        while (message := bound.get(no_ack=True)) is not None:
            taken.append(message)
    return taken


def forged(channel: Any) -> Any:
    return channel.prepare_message("forged", content_type="text/plain", content_encoding="utf-8")


def test_a_rabbitmq_node_user_publishes_telemetry_with_the_agents_transport(vhost: RabbitVhost) -> None:
    declare_as_the_app_does(vhost.admin_url)
    sent = envelopes()
    send_all(vhost.node_url, sent)
    messages = take_all(vhost.admin_url, wire.TELEMETRY_QUEUE)
    assert [m.headers["task"] for m in messages] == [wire.TASKS_BY_KIND[e["kind"]] for e in sent]
    assert [m.decode()[0][0] for m in messages] == sent
    assert take_all(vhost.admin_url, "celery") == []


def test_before_the_app_declared_its_queues_a_node_is_told_to_retry(vhost: RabbitVhost) -> None:
    """With publisher confirms the broker's refusal reaches the agent, which spools the envelope."""
    with pytest.raises(TransportUnavailable, match="NOT_FOUND - no exchange 'telemetry'"):
        send_all(vhost.node_url, envelopes()[:1])


def test_a_rabbitmq_node_user_can_do_nothing_else(vhost: RabbitVhost) -> None:
    from amqp.exceptions import AccessRefused
    from kombu import Connection

    declare_as_the_app_does(vhost.admin_url)
    send_all(vhost.node_url, envelopes()[:1])

    def on_a_fresh_channel(action: Callable[[Any], object]) -> Callable[[], None]:
        def run() -> None:
            with Connection(vhost.node_url, transport_options={"confirm_publish": True}) as connection:
                action(connection.default_channel)
        return run

    refused = {what: on_a_fresh_channel(action) for what, action in {
        "consume telemetry": lambda ch: ch.basic_consume(wire.TELEMETRY_QUEUE, callback=lambda m: None),
        "get a message": lambda ch: ch.basic_get(wire.TELEMETRY_QUEUE),
        "purge the queue": lambda ch: ch.queue_purge(wire.TELEMETRY_QUEUE),
        "delete the queue": lambda ch: ch.queue_delete(wire.TELEMETRY_QUEUE),
        "declare a queue": lambda ch: ch.queue_declare("mine"),
        "declare an exchange": lambda ch: ch.exchange_declare("mine", "fanout"),
        "bind telemetry to the celery queue": lambda ch: ch.queue_bind("celery", wire.TELEMETRY_QUEUE, "telemetry"),
        "publish to the celery exchange": lambda ch: ch.basic_publish(
            forged(ch), exchange="celery", routing_key="celery"),
        # The default exchange reaches every queue by name: the node may not use it at all.
        "publish to the celery queue by name": lambda ch: ch.basic_publish(
            forged(ch), exchange="", routing_key="celery"),
    }.items()}
    assert allowed(refused, AccessRefused) == []
    with pytest.raises(TransportUnavailable, match="ACCESS_REFUSED"):
        send_all(vhost.node_url, envelopes()[:1], queue="celery")
    assert len(take_all(vhost.admin_url, wire.TELEMETRY_QUEUE)) == 1
    assert take_all(vhost.admin_url, "celery") == []

"""The transport: what the agent publishes with kombu is a Celery task a real worker runs."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.agents.support import KEY, TOKEN, RedisServer, free_port
from wattwise_agent import wire
from wattwise_agent.transport import CeleryTransport, TransportUnavailable, celery_task_message, redact_url


def envelopes() -> list[dict[str, Any]]:
    """One envelope of each kind a stream sends (the transport carries them whatever their payload)."""
    return [
        wire.seal("open_run", "node-a", {"run": "r", "stream": "s", "started_ms": 1}, TOKEN),
        wire.seal("batch", "node-a", {"run": "r", "stream": "s", "seq": 0, "gpus": []}, TOKEN, check=False),
        wire.seal("close_run", "node-a", {"run": "r", "stream": "s", "ended_ms": 2, "last_seq": 0}, TOKEN),
    ]


# Celery itself (the app's package, not the agent's) is the reference for these two.
@pytest.mark.app
def test_celery_worker_runs_the_task_the_agent_published_with_the_identical_envelope(
    redis_server: RedisServer,
) -> None:
    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    app = Celery("agent-transport-test", broker=redis_server.url, set_as_current=False)
    app.conf.update(task_default_queue="celery", broker_connection_retry_on_startup=True)
    received: list[tuple[str, dict[str, Any], str]] = []
    done = threading.Event()

    def record(task: Any, envelope: dict[str, Any]) -> None:
        received.append((task.name, envelope, task.request.delivery_info["routing_key"]))
        if len(received) == 3:
            done.set()

    for name in wire.TASKS_BY_KIND.values():
        # With the Django app loaded, its shared tasks of the same names join every Celery app: drop them.
        app.tasks.pop(name, None)
        app.task(name=name, bind=True)(record)

    sent = envelopes()
    transport = CeleryTransport(redis_server.url)
    with start_worker(app, pool="solo", perform_ping_check=False, queues=[wire.TELEMETRY_QUEUE],
                      shutdown_timeout=30):
        for envelope in sent:
            transport.send(envelope)
        assert done.wait(20), f"worker ran {len(received)} of 3 tasks"
    transport.close()
    assert [name for name, _, _ in received] == [wire.TASKS_BY_KIND[e["kind"]] for e in sent]
    assert [envelope for _, envelope, _ in received] == sent
    assert {queue for _, _, queue in received} == {wire.TELEMETRY_QUEUE}
    # The worker received exactly what was signed: the app can verify it.
    assert wire.open_envelope(received[1][1], "batch", KEY)["seq"] == 0


@pytest.mark.app
def test_the_message_has_the_shape_celery_send_task_gives_it() -> None:
    from celery import Celery

    app = Celery("shape", broker="memory://", set_as_current=False)
    envelope = envelopes()[1]
    body, headers, properties = celery_task_message(envelope, task_id="abc", origin="here")
    reference = app.amqp.as_task_v2("abc", wire.TASK_INGEST_BATCH, args=[envelope], ignore_result=True,
                                    origin="here")
    assert set(headers) == set(reference.headers)
    for key in ("lang", "task", "id", "root_id", "parent_id", "group", "retries", "eta", "expires",
                "timelimit", "ignore_result", "origin", "kwargsrepr"):
        assert headers[key] == reference.headers[key], key
    assert body == [list(reference.body[0]), reference.body[1], reference.body[2]]
    assert properties == reference.properties


def test_unreachable_broker_fails_fast_with_transport_unavailable() -> None:
    transport = CeleryTransport(f"redis://127.0.0.1:{free_port()}/0", connect_timeout_s=1.0)
    began = time.monotonic()
    with pytest.raises(TransportUnavailable):
        transport.send(envelopes()[0])
    assert time.monotonic() - began < 3.0


def test_broker_passwords_never_appear_in_messages() -> None:
    transport = CeleryTransport("redis://:s3cret@127.0.0.1:1/0")
    assert "s3cret" not in repr(transport)
    assert redact_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    with pytest.raises(TransportUnavailable) as info:
        transport.send(envelopes()[0])
    assert "s3cret" not in str(info.value)

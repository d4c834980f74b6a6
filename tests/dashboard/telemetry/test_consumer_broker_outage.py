"""The coalescing consumer (``manage.py consume_telemetry``) through a broker outage, on a Redis of the test's
own that is stopped and started again under it: it stays up, says once that the broker is unreachable (its URL
without the password) and once that it is back, its ready file (compose's health check) is gone while the
broker is, and nothing is lost or counted twice: a group it had stored and not yet acknowledged when Redis went
comes back after the visibility timeout and is found a duplicate. A failure of the database is not taken for
one of the broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
from django.db import OperationalError
from kombu import Connection, Producer

from dashboard.telemetry import consumer
from dashboard.telemetry.broker_link import LONGEST_WAIT_S, Link, keep_consuming
from dashboard.telemetry.ingest_memo import IngestMemo
from dashboard.telemetry.models import BatchReceipt, DeadLetter, RunGpu
from dashboard.telemetry.redis_queue import RedisQueue
from tests import worker_process
from tests.broker_users import RABBITMQ_PORT, rabbitmq_vhost
from tests.dashboard.telemetry.http_support import celery_on_broker
from tests.factories import register, simple_batch
from tests.private_services import ROOT, CuttableLink, PrivateRedis, django_reads, free_port
from tests.worker_process import flush, wait_until
from wattwise_agent.transport import CeleryTransport
from wattwise_agent.wire import TELEMETRY_QUEUE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults, pytest.mark.services]

PASSWORD = "not-in-the-log-4f2a"
UNREACHABLE = "unreachable ("  # broker_link's line at the start of an outage
BACK = "is back after"  # and at its end


@dataclass
class Consumer:
    process: subprocess.Popen[str]
    ready: Path
    log: Path

    def said(self, words: str) -> int:
        """How many lines of its log hold ``words``."""
        return sum(words in line for line in self.log.read_text(errors="replace").splitlines())

    def stop(self) -> str:
        """SIGTERM, and its log once it has exited (within 30 s)."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return self.log.read_text(errors="replace")


@contextmanager
def consume_telemetry(broker_url: str, directory: Path) -> Iterator[Consumer]:
    """``manage.py consume_telemetry`` as compose runs it, on the test database and ``broker_url``; a message
    taken and not acknowledged comes back after 1 s (the visibility timeout)."""
    env = {**os.environ, "DATABASE_URL": worker_process.test_database_url(), "CELERY_BROKER_URL": broker_url,
           "DATABASE_CONN_MAX_AGE": "0", "CELERY_VISIBILITY_TIMEOUT": "1"}
    ready, log = directory / "consume_telemetry.ready", directory / "consumer.log"
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "manage.py", "consume_telemetry", "--ready-file", str(ready)],
                                   cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
    try:
        yield Consumer(process, ready, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def lock_receipts() -> psycopg.Connection:
    """Hold the receipts table until the connection returned is closed: a consumer storing batches meanwhile
    waits, holding the messages it took."""
    connection = psycopg.connect(worker_process.test_database_url())
    connection.execute("LOCK TABLE dashboard_batchreceipt IN ACCESS EXCLUSIVE MODE")
    return connection


def publish(broker_url: str, envelopes: list[dict]) -> None:
    transport = CeleryTransport(broker_url)
    for message in envelopes:
        transport.send(message)
    transport.close()


def left_on(broker: PrivateRedis) -> tuple[int, int]:
    """(messages waiting, messages taken and not acknowledged)."""
    client = redis.Redis.from_url(broker.url())
    return int(client.llen(TELEMETRY_QUEUE)), int(client.hlen("unacked"))


@pytest.fixture
def broker(tmp_path) -> Iterator[PrivateRedis]:
    (tmp_path / "redis").mkdir()
    broker = PrivateRedis(tmp_path / "redis", password=PASSWORD)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_a_redis_outage_leaves_the_consumer_up_and_unready_and_loses_or_doubles_nothing(postgres, broker, tmp_path):
    node = register()
    publish(broker.url(), [simple_batch(node, seq=seq) for seq in range(3)])
    locked = lock_receipts()
    with closing(locked), consume_telemetry(broker.url(), tmp_path) as running:
        wait_until(running.ready.exists, 60, "the ready file", running.process)
        wait_until(lambda: left_on(broker) == (0, 3), 60, "the consumer to take the batches", running.process)
        broker.stop()  # while it waits on the database, holding them
        locked.close()
        wait_until(lambda: not running.ready.exists(), 60, "the ready file to go", running.process)
        wait_until(lambda: BatchReceipt.objects.count() == 3, 60, "the batches to be stored", running.process)
        assert running.process.poll() is None and running.said(UNREACHABLE) == 1
        stored = RunGpu.objects.values_list("samples", "energy_j").get()
        broker.start()
        wait_until(running.ready.exists, 60, "the ready file back", running.process)
        # Acknowledged neither before the outage nor after: back after the visibility timeout, a duplicate.
        wait_until(lambda: left_on(broker) == (0, 0), 60, "the unacknowledged batches to come back", running.process)
        assert RunGpu.objects.values_list("samples", "energy_j").get() == stored
        publish(broker.url(), [simple_batch(node, seq=3)])
        wait_until(lambda: BatchReceipt.objects.count() == 4 and left_on(broker) == (0, 0), 60,
                   "the batch sent after the outage to be stored", running.process)
        log = running.stop()
    assert running.process.returncode == 0 and "stopped: 3 duplicate, 4 stored" in log
    assert running.said(UNREACHABLE) == 1 and running.said(BACK) == 1
    assert f"broker redis://:**@127.0.0.1:{broker.port}/0 unreachable (ConnectionError" in log
    assert PASSWORD not in log
    assert RunGpu.objects.get().samples == sum(BatchReceipt.objects.values_list("samples", flat=True)) == 40


def test_a_rabbitmq_link_cut_leaves_the_consumer_up_and_unready_until_it_is_mended(postgres, tmp_path):
    """The kombu path (any broker but Redis): the same, on a RabbitMQ virtual host of the test's own reached
    through a link the test cuts."""
    node = register()
    with rabbitmq_vhost() as vhost, closing(CuttableLink(RABBITMQ_PORT)) as link:
        through_link = vhost.admin_url.replace(f":{RABBITMQ_PORT}/", f":{link.port}/")
        with consume_telemetry(through_link, tmp_path) as running:
            wait_until(running.ready.exists, 60, "the ready file", running.process)
            link.cut()
            wait_until(lambda: not running.ready.exists(), 60, "the ready file to go", running.process)
            assert running.said(UNREACHABLE) == 1
            link.mend()
            wait_until(running.ready.exists, 60, "the ready file back", running.process)
            publish(vhost.admin_url, [simple_batch(node, seq=0)])
            wait_until(lambda: BatchReceipt.objects.count() == 1, 60, "the batch to be stored", running.process)
            log = running.stop()
    assert running.process.returncode == 0 and "stopped: 1 stored" in log
    assert running.said(UNREACHABLE) == 1 and running.said(BACK) == 1 and "guest:**@" in log


def test_a_consumer_started_while_the_broker_is_down_is_not_ready_and_stops_on_sigterm(postgres, tmp_path):
    with consume_telemetry(f"redis://127.0.0.1:{free_port()}/0", tmp_path) as running:
        wait_until(lambda: running.said(UNREACHABLE) == 1, 60, "the outage to be logged", running.process)
        assert not running.ready.exists()
        log = running.stop()
    assert running.process.returncode == 0 and "stopped: nothing" in log


def test_a_database_failure_is_not_taken_for_a_broker_outage(postgres, redis_url, tmp_path, caplog):
    """It ends the consumer as before (compose restarts it); the message it held stays unacknowledged, to come
    back to the next one."""
    flush(redis_url)
    queue = consumer._telemetry_queue()
    with Connection(redis_url) as connection:  # not a task: recorded as a rejection, a write, which fails
        Producer(connection).publish({"not": "a task"}, exchange=queue.exchange, routing_key=queue.routing_key,
                                     declare=[queue])
    client = redis.Redis.from_url(redis_url)
    ready = tmp_path / "ready"
    no_database = f"postgres://postgres@127.0.0.1:{free_port()}/none"
    with celery_on_broker(redis_url) as app, django_reads(no_database), pytest.raises(OperationalError):
        consumer.consume_through_outages(app, ready_file=ready, memo=IngestMemo(), stop=lambda: False)
    assert not ready.exists()  # ended by the database's error: not ready (compose restarts it)
    assert not any(UNREACHABLE in record.getMessage() for record in caplog.records)
    assert (client.llen(TELEMETRY_QUEUE), client.hlen("unacked")) == (0, 1)


def test_a_broker_that_takes_connections_but_fails_every_call_is_one_outage_and_never_ready(redis_url, tmp_path,
                                                                                            caplog):
    """Connecting goes through, the calls after it fail (as a Redis still loading its data answers them): the
    consumer is never ready, says once that the broker is unreachable and never that it is back, and waits
    longer between tries each time instead of trying again every 0.1 s."""
    ready = tmp_path / "ready"
    link = Link("redis://127.0.0.1/0", ready)
    failing = RedisQueue(redis.Redis(port=free_port(), socket_connect_timeout=1), TELEMETRY_QUEUE,
                         max_message_bytes=1 << 20)
    ready_when_consuming: list[bool] = []

    def consume_connected() -> None:
        ready_when_consuming.append(ready.exists())
        consumer.consume_redis(failing, alive=link.up)

    with Connection(redis_url) as connection:  # a broker that takes the connection
        keep_consuming(consumer._session(connection, consume_connected), link,
                       stop=lambda: len(ready_when_consuming) >= 5)
    assert ready_when_consuming == [False] * 5 and not ready.exists()
    said = [record.getMessage() for record in caplog.records]
    assert sum(UNREACHABLE in line for line in said) == 1 and not any(BACK in line for line in said)
    assert link.wait_s == LONGEST_WAIT_S  # 0.1 s doubling, as for a broker that refuses connections


def test_a_consumer_told_to_stop_while_the_database_is_down_gives_the_batch_back_to_the_queue(
        postgres, redis_url, settings, caplog):
    """It stops waiting for the database (``WATTWISE_DB_RETRY_S``, 90 s by default, is past compose's grace period)
    and puts the message back for the next consumer: no dead letter, nothing left unacknowledged."""
    settings.WATTWISE_DB_RETRY_S = 10  # retried on, a second retry would be logged: the test fails, not hangs
    flush(redis_url)
    publish(redis_url, [simple_batch(register())])
    client = redis.Redis.from_url(redis_url)

    def retries() -> int:
        return sum("database unreachable" in record.getMessage() for record in caplog.records)

    with django_reads(f"postgres://postgres@127.0.0.1:{free_port()}/none"):
        consumer.consume_redis(RedisQueue(client, TELEMETRY_QUEUE, max_message_bytes=1 << 20), memo=IngestMemo(),
                               stop=lambda: retries() >= 1)  # as SIGTERM during the first wait
    assert (client.llen(TELEMETRY_QUEUE), client.hlen("unacked")) == (1, 0)
    assert retries() == 1 and not DeadLetter.objects.exists() and not BatchReceipt.objects.exists()

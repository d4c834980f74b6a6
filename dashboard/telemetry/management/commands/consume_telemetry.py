from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from dashboard.telemetry import consumer, ingest_memo
from dashboard.telemetry.redis_queue import RedisQueue
from wattwise_agent.wire import TELEMETRY_QUEUE


class Command(BaseCommand):
    help = ("Consume the telemetry queue, storing every batch waiting (up to a bound) as one unit of work "
            "(dashboard.telemetry.consumer); in place of, or beside, `celery -A dashboard worker -Q telemetry`. "
            "Stops after the messages in hand on SIGTERM or SIGINT.")
    requires_system_checks: list[str] = []  # a long-running consumer, like a worker: checks are the web's

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-messages", type=int, default=consumer.MAX_MESSAGES,
                            help=f"messages stored together at most (default {consumer.MAX_MESSAGES})")
        parser.add_argument("--max-bytes", type=int, default=consumer.MAX_BYTES,
                            help=f"bytes of messages stored together at most (default {consumer.MAX_BYTES})")
        parser.add_argument("--poll-s", type=float, default=consumer.POLL_S,
                            help=f"Redis: how often an empty queue is looked at, the most a window waits before it is "
                                 f"stored (default {consumer.POLL_S})")
        parser.add_argument("--ready-file", type=Path, help="touch this file once consuming (for scripts)")

    def handle(self, *args: Any, **options: Any) -> None:
        stopping: list[int] = []

        def stop(signum: int, _: Any) -> None:
            stopping.append(signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        app = current_app._get_current_object()  # type: ignore[attr-defined]  # celery's proxy
        bounds = {"max_messages": options["max_messages"], "max_bytes": options["max_bytes"]}
        memo = ingest_memo.for_this_worker()
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=None)
            if options["ready_file"]:
                options["ready_file"].touch()
            if connection.transport.driver_type == "redis":
                import redis

                queue = RedisQueue(redis.Redis.from_url(app.conf.broker_url), TELEMETRY_QUEUE,
                                   max_message_bytes=settings.WATTWISE_BROKER_MAX_MESSAGE_BYTES)
                qos = connection.default_channel.qos  # kombu's, for restoring what a dead consumer left
                totals = consumer.consume_redis(queue, memo=memo, stop=lambda: bool(stopping), idle_s=options["poll_s"],
                                                restore=lambda: qos.restore_visible(num=1000, interval=1), **bounds)
            else:
                totals = consumer.consume(connection, memo=memo, stop=lambda: bool(stopping), **bounds)
        self.stderr.write("stopped: " + (", ".join(f"{n} {status}" for status, n in sorted(totals.items())) or "nothing"))

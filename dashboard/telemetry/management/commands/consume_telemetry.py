from __future__ import annotations

import signal
from typing import Any

from celery import current_app
from django.core.management.base import BaseCommand, CommandParser

from dashboard.telemetry import consumer, ingest_memo


class Command(BaseCommand):
    help = ("Consume the telemetry queue, storing every batch waiting (up to a bound) as one unit of work "
            "(dashboard.telemetry.consumer); in place of, or beside, `celery -A dashboard worker -Q telemetry`. "
            "Stops after the messages in hand on SIGTERM or SIGINT.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-messages", type=int, default=consumer.MAX_MESSAGES,
                            help=f"messages stored together at most (default {consumer.MAX_MESSAGES})")
        parser.add_argument("--max-bytes", type=int, default=consumer.MAX_BYTES,
                            help=f"bytes of messages stored together at most (default {consumer.MAX_BYTES})")

    def handle(self, *args: Any, **options: Any) -> None:
        stopping: list[int] = []

        def stop(signum: int, _: Any) -> None:
            stopping.append(signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        app = current_app._get_current_object()  # type: ignore[attr-defined]  # celery's proxy
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=None)
            totals = consumer.consume(connection, memo=ingest_memo.for_this_worker(), max_messages=options["max_messages"],
                                      max_bytes=options["max_bytes"], stop=lambda: bool(stopping))
        self.stderr.write("stopped: " + (", ".join(f"{n} {status}" for status, n in sorted(totals.items())) or "nothing"))

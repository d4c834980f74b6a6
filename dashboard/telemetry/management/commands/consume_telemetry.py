from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from celery import current_app
from django.core.management.base import BaseCommand, CommandParser

from dashboard.telemetry import consumer, ingest_memo


class Command(BaseCommand):
    help = ("Consume the telemetry queue, storing every batch waiting (up to a bound) as one unit of work "
            "(dashboard.telemetry.consumer); in place of, or beside, `celery -A dashboard worker -Q telemetry`. "
            "Rides out a broker outage, trying again until the broker is back (dashboard.telemetry.broker_link). "
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
        parser.add_argument("--ready-file", type=Path,
                            help="there while connected to the broker (a health check): made on connecting, removed "
                                 "while the broker is unreachable")

    def handle(self, *args: Any, **options: Any) -> None:
        stopping: list[int] = []

        def stop(signum: int, _: Any) -> None:
            stopping.append(signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        totals = consumer.consume_through_outages(
            current_app._get_current_object(),  # type: ignore[attr-defined]  # celery's proxy
            ready_file=options["ready_file"], memo=ingest_memo.for_this_worker(), stop=lambda: bool(stopping),
            poll_s=options["poll_s"], max_messages=options["max_messages"], max_bytes=options["max_bytes"])
        self.stderr.write("stopped: " + (", ".join(f"{n} {status}" for status, n in sorted(totals.items())) or "nothing"))

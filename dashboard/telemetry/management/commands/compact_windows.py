"""``manage.py compact_windows``: what the beat task ``telemetry.compact_windows`` does, pass after pass until
nothing is left (``--before`` for another horizon than ``WATTWISE_COMPACT_AFTER_S`` ago)."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.telemetry import compaction


class Command(BaseCommand):
    help = "Compact closed windows: a stream's consecutive windows of a GPU become one row per chunk of time."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--before-ms", type=int, default=None,
                            help="compact chunks that ended by this time (ms since the epoch); "
                                 "default: WATTWISE_COMPACT_AFTER_S ago")

    def handle(self, *args: Any, **options: Any) -> None:
        before_ms = options["before_ms"]
        if before_ms is None:
            before_ms = int(time.time() * 1000) - settings.WATTWISE_COMPACT_AFTER_S * 1000
        chunk_ms = settings.WATTWISE_COMPACT_CHUNK_S * 1000
        windows = rows = passes = 0
        with compaction.only_task() as alone:
            if not alone:
                raise CommandError("another compaction is running (the beat task's?): try again once it is done")
            while True:
                done = compaction.compact(before_ms, chunk_ms)
                passes += 1
                windows += done.windows
                rows += done.rows
                self.stdout.write(f"pass {passes}: {done.gpus} GPUs, {done.windows:,} windows into {done.rows:,} rows")
                if not done.more or not done.gpus:
                    break
        self.stdout.write(f"compacted {windows:,} windows into {rows:,} rows in {passes} passes")

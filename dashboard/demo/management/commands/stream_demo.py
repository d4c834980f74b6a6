from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.demo import seed as demo


class Command(BaseCommand):
    help = ("Stream a simulated run into the demo project in real time (10 Hz, 5 s windows), so its run page "
            "can be watched updating live. Stops after --minutes, or on Ctrl-C, and then closes the run.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--run", default="live-demo", help="run name (default: live-demo)")
        parser.add_argument("--gpus", type=int, default=4, help="simulated GPUs (default: 4)")
        parser.add_argument("--minutes", type=float, default=60.0,
                            help="how long to stream; 0 streams until stopped (default: 60)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["gpus"] <= 64:
            raise CommandError("--gpus must be between 1 and 64")
        if options["minutes"] < 0:
            raise CommandError("--minutes must be 0 (until stopped) or more")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        duration_s = options["minutes"] * 60 or None
        self.stdout.write(f"Streaming simulated run {options['run']!r} ({options['gpus']} GPUs) into project "
                          f"{demo.DEMO_PROJECT!r}; open it from the runs list. Ctrl-C stops it.")
        summary = demo.stream_live(options["run"], gpus=options["gpus"], duration_s=duration_s, stop=stop)
        self.stdout.write(f"Stopped: {summary.samples_sent:,} samples sent; run {options['run']!r} is finished.")

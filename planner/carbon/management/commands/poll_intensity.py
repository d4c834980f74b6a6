"""``manage.py poll_intensity [--zone Z ...]``: poll the live providers once (what Celery beat runs)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from planner.carbon import live


class Command(BaseCommand):
    help = "Fetch recent history and forecasts from the configured live providers and store them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--zone", action="append", help="zone to poll (repeatable; default: zones in use)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not any(p.enabled for p in live.configured_providers()):
            self.stdout.write("no live provider is configured (see .env.example): nothing to poll")
            return
        report = live.poll(options["zone"])
        for key, count in report.stored.items():
            self.stdout.write(f"{key}: {count} row(s) stored or updated")
        for error in report.errors:
            self.stdout.write(f"error (fell back to the next provider): {error}")
        for key in report.unanswered:
            self.stdout.write(f"{key}: no provider answered; stored and yearly data stay in use")

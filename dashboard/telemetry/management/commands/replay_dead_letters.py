from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from dashboard.telemetry.delivery import replay
from dashboard.telemetry.models import DeadLetter


class Command(BaseCommand):
    help = ("Replay the agent messages kept as dead letters (a worker could neither store nor refuse them), "
            "oldest first: each is stored, refused with a recorded reason, or stays with the new error.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ids", nargs="*", type=int, help="only these dead letters (default: every one not replayed)")

    def handle(self, *args: Any, **options: Any) -> None:
        letters = DeadLetter.objects.order_by("created_at")
        letters = letters.filter(pk__in=options["ids"]) if options["ids"] else letters.filter(replayed_at__isnull=True)
        replayed = 0
        for letter in letters:
            said = replay(letter)
            replayed += letter.replayed_at is not None
            self.stdout.write(f"{letter.pk} {letter.task} from {letter.node_name or '?'}: {said}")
        left = DeadLetter.objects.filter(replayed_at__isnull=True).count()
        self.stderr.write(f"replayed {replayed}; {left} dead letter(s) left to replay")

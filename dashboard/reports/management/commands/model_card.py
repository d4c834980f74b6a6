from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.reports.model_card import NotReady, model_card_yaml
from dashboard.reports.selection import BadSelection, pick_runs
from dashboard.telemetry.models import Run


class Command(BaseCommand):
    help = ("Print the co2_eq_emissions block of a Hugging Face model card (YAML) for one run, or several runs "
            "that together trained one model: emissions in grams (location-based, market-based beside it), source, "
            "training type (from a run tag), location, hardware and energy in kWh.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("runs", nargs="+", help="run ids or names")
        parser.add_argument("--project", help="project name, when several projects have a run of that name")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            runs = pick_runs(Run.objects.all(), options["runs"], options["project"])
            self.stdout.write(model_card_yaml(runs), ending="")
        except (BadSelection, NotReady) as error:
            raise CommandError(str(error)) from None

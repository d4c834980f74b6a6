from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.runs.summaries import run_figures
from dashboard.telemetry.models import Run
from planner.carbon.figures import run_summary as carbon_summary


class Command(BaseCommand):
    help = ("Print a run's energy and carbon figures as one JSON object (energy_j, samples, per-GPU energy by "
            "UUID, emissions_g, market_emissions_g, pue, hourly, ...).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="run name")
        parser.add_argument("--project", help="project name, when several projects have a run of that name")

    def handle(self, *args: Any, **options: Any) -> None:
        runs = Run.objects.filter(name=options["name"]).select_related("project")
        if options["project"]:
            runs = runs.filter(project__name=options["project"])
        found = list(runs)
        if not found:
            raise CommandError(f"no run named {options['name']!r}")
        if len(found) > 1:
            projects = ", ".join(sorted(r.project.name for r in found))
            raise CommandError(f"several runs are named {options['name']!r} (projects: {projects}); pass --project")
        summary = run_figures(found[0]).as_json()
        # Carbon, as stored (tasks compute it; `recompute_carbon RUN` does it now): emissions_g (location-based),
        # market_emissions_g, pue, hourly, and details under "carbon", whose "status" says whether it is current.
        summary.update(carbon_summary(found[0]))
        self.stdout.write(json.dumps(summary))

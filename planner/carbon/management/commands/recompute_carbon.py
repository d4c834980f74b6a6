"""``manage.py recompute_carbon [RUN ...] [--stale]``: recompute stored run emissions now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.telemetry.models import Run
from planner.carbon.accounting import store_run_carbon
from planner.carbon.models import RunCarbon


class Command(BaseCommand):
    help = "Recompute the stored emissions of the named runs, of the stale ones (--stale), or of every run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("runs", nargs="*", help="run names (default: every run)")
        parser.add_argument("--stale", action="store_true", help="only runs whose figures were flagged stale")

    def handle(self, *args: Any, **options: Any) -> None:
        runs = Run.objects.all().order_by("pk")
        if options["runs"]:
            runs = runs.filter(name__in=options["runs"])
            missing = set(options["runs"]) - set(runs.values_list("name", flat=True))
            if missing:
                raise CommandError(f"no run named {', '.join(sorted(missing))}")
        if options["stale"]:
            runs = runs.filter(pk__in=RunCarbon.objects.filter(stale=True).values("run_id"))
        done = 0
        for run in runs:
            stored = store_run_carbon(run)
            done += 1
            if stored is not None:
                self.stdout.write(f"{run.project.name}/{run.name}: {stored.emissions_g:,.1f} g location-based, "
                                  f"{stored.market_emissions_g:,.1f} g market-based, {stored.fallback_hours} "
                                  f"fallback hour(s)")
        self.stdout.write(f"recomputed {done} run(s)")

"""``manage.py import_intensity FILE [--zone Z] [--project P]``: import a grid-intensity or CodeCarbon file,
as project P's own data or (without --project; whoever runs manage.py administers the server) as data
shared by every project."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.projects.models import Project
from planner.carbon.imports import ImportOptions
from planner.carbon.models import Basis, IntensityImport
from planner.carbon.streaming import import_path
from planner.grid_carbon.importers import CarbonImportError


class Command(BaseCommand):
    help = (
        "Import a file, detecting its format: Electricity Maps CSV (hourly/daily/monthly/yearly, both header "
        "generations) or API v3 JSON, UK Carbon Intensity API JSON, WattTime v3 JSON, or CodeCarbon's "
        "emissions.csv (needs --project). With --project the data is that project's own (only its runs use "
        "it); without, it is shared by every project. All or nothing; importing the same file again changes "
        "nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--zone", help="file the data under this zone (or the zone of this cloud region)")
        parser.add_argument("--basis", choices=Basis.values, default=Basis.LIFECYCLE,
                            help="which Electricity Maps intensity to import (default lifecycle)")
        parser.add_argument("--project", help="the project whose own data this is (CodeCarbon files: the "
                            "project the runs belong to); default: shared by every project")
        parser.add_argument("--timezone", default="UTC",
                            help="CodeCarbon files: the machine's time zone (its timestamps are local time)")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        project = None
        if options["project"]:
            project = Project.objects.filter(name=options["project"]).first()
            if project is None:
                raise CommandError(f"no project named {options['project']!r}")
        bar = ProgressBar(self.stderr, size)
        try:
            how = ImportOptions(zone=options["zone"], basis=options["basis"], project=project,
                                timezone_name=options["timezone"], via=IntensityImport.Via.COMMAND)
            result = import_path(path, path.name, how, progress=bar)
        except CarbonImportError as exc:
            raise CommandError(f"{path.name}: {exc} (nothing was imported)") from None
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        finally:
            bar.close()
        self.stdout.write(result.message)


class ProgressBar:
    """``[#####-----]  50 %  451,000 rows`` on one line of stderr, redrawn as the import goes."""

    WIDTH = 30

    def __init__(self, out: Any, size_bytes: int) -> None:
        self.out, self.size_bytes, self.drawn = out, max(size_bytes, 1), False

    def __call__(self, rows: int, bytes_read: int) -> None:
        fraction = min(1.0, bytes_read / self.size_bytes)
        filled = round(fraction * self.WIDTH)
        self.out.write(f"\r[{'#' * filled}{'-' * (self.WIDTH - filled)}] {fraction:4.0%} {rows:>11,} rows", ending="")
        self.out.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.out.write("")

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.projects.models import Project
from dashboard.reports.period import period_report
from dashboard.reports.periods import BadPeriod, parse_period
from dashboard.reports.render import PdfUnavailable, to_csv, to_html, to_markdown, to_pdf

TEXT = {"csv": to_csv, "md": to_markdown, "html": to_html}


class Command(BaseCommand):
    help = ("Print a project's energy and emissions report for a period (runs started in it): totals, location- and "
            "market-based emissions, instruments, PUE, offsets retired, biggest runs, energy by GPU model and by site, "
            "and the data sources with their licences.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--period", default="", help="2026-11 (month), 2026-Q4 (quarter) or 2026 (year)")
        parser.add_argument("--from", dest="first", default="", help="first day, YYYY-MM-DD (a custom period)")
        parser.add_argument("--to", dest="last", default="", help="last day, YYYY-MM-DD, inclusive")
        parser.add_argument("--format", choices=["html", "pdf", "csv", "md"], default="md")
        parser.add_argument("--output", type=Path, help="write to this file (a PDF goes to stdout's bytes otherwise)")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        if not (options["period"] or options["first"] or options["last"]):
            raise CommandError("give --period, or --from and --to")
        try:
            period = parse_period(options["period"], options["first"], options["last"])
        except BadPeriod as error:
            raise CommandError(str(error)) from None
        report = period_report(project, period)
        if options["format"] != "pdf":
            text = TEXT[options["format"]](report)
            if options["output"]:
                options["output"].write_text(text, encoding="utf-8")
            else:
                self.stdout.write(text, ending="")
            return
        try:
            pdf = to_pdf(to_html(report))
        except PdfUnavailable as error:
            raise CommandError(str(error)) from None
        if options["output"]:
            options["output"].write_bytes(pdf)
        else:
            sys.stdout.buffer.write(pdf)

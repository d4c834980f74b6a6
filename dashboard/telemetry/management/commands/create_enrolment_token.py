from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.telemetry.nodes import NodeError, create_enrolment_token


class Command(BaseCommand):
    help = (
        "Issue a project enrolment token and print it (the last line of output): every node given it "
        "registers itself in the project on first contact, under its host name."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="project the nodes' runs belong to (created if new)")
        parser.add_argument("--name", default="", help="what the token is for, e.g. the cluster (default enrolment-N)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            row, token, project_created = create_enrolment_token(options["project"], options["name"])
        except NodeError as exc:
            raise CommandError(str(exc)) from None
        if project_created:
            self.stderr.write(f"created project {row.project.name!r}")
        self.stderr.write(
            f"issued enrolment token {row.name!r} (key id {row.key_id}) for project {row.project.name!r}. The token "
            "below is shown once; give it to the project's agents as WATTWISE_TOKEN. Revoking it (admin) stops "
            "every node enrolled with it."
        )
        self.stdout.write(token)

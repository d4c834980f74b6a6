from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.projects.membership import MembershipError, find_project, find_user, remove_member


class Command(BaseCommand):
    help = "Remove a user from a project (they no longer see its runs). A project's only admin cannot be removed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="username")
        parser.add_argument("project", help="project name")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            change = remove_member(find_project(options["project"]), find_user(options["user"], must_be_active=False))
        except MembershipError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(change.message)

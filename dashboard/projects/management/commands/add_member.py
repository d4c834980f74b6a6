from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.projects.membership import MembershipError, Role, add_member, find_project, find_user


class Command(BaseCommand):
    help = (
        "Add a user to a project, as a member or (--admin) an admin who manages its members. Running it again "
        "changes nothing; --admin promotes an existing member and --member demotes an admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="username")
        parser.add_argument("project", help="project name")
        role = parser.add_mutually_exclusive_group()
        role.add_argument("--admin", action="store_true", help="make them an admin of the project")
        role.add_argument("--member", action="store_true", help="make them a plain member (demotes an admin)")

    def handle(self, *args: Any, **options: Any) -> None:
        role = Role.ADMIN if options["admin"] else Role.MEMBER if options["member"] else None
        try:
            change = add_member(find_project(options["project"]), find_user(options["user"]), role)
        except MembershipError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(change.message)

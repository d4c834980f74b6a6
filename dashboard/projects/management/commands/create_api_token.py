from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.projects.tokens import issue_token


class Command(BaseCommand):
    help = "Issue a REST API token for a user and print it (the last line of output). It is shown only once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="username of the token's owner")
        parser.add_argument(
            "--name", default="default", help="a label to recognise the token by (default: default)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: options["user"]})
        except User.DoesNotExist:
            raise CommandError(
                f"no user named {options['user']!r}; create one first (manage.py createsuperuser)"
            ) from None
        if not user.is_active:
            raise CommandError(f"user {options['user']!r} is inactive; a token for it would not work")
        token = issue_token(user, name=options["name"])
        self.stderr.write(
            f"issued API token {options['name']!r} for {options['user']!r}. It is shown once; send it as "
            "'Authorization: Bearer TOKEN'."
        )
        self.stdout.write(token)

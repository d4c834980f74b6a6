from __future__ import annotations

import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.telemetry.nodes import NodeError, register_node


class Command(BaseCommand):
    help = "Register a training node and print its agent token (the last line of output)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "node", nargs="?", default=None,
            help="node name, as the agent will send it (the agent's --node, else its host name); "
                 "default: this machine's host name, for an agent on the same machine",
        )
        parser.add_argument("--project", required=True, help="project the node's runs belong to (created if new)")
        parser.add_argument("--rotate", action="store_true", help="issue a new token for an existing node")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            node, token, project_created = register_node(
                options["node"] or socket.gethostname(), options["project"], rotate=options["rotate"]
            )
        except NodeError as exc:
            raise CommandError(str(exc)) from None
        if project_created:
            self.stderr.write(f"created project {node.project.name!r}")
        verb = "issued a new token for" if options["rotate"] else "registered"
        self.stderr.write(
            f"{verb} node {node.name!r} in project {node.project.name!r}. The token below is shown once; "
            "give it to the agent as WATTWISE_TOKEN."
        )
        self.stdout.write(token)

"""Registering nodes and issuing their tokens."""

from __future__ import annotations

import secrets

from django.db import transaction

from agents.wire import MAX_NAME_CHARS, signing_key
from dashboard.projects.models import Project
from dashboard.telemetry.models import Node


class NodeError(ValueError):
    pass


def new_token() -> str:
    return "ww_" + secrets.token_urlsafe(32)


@transaction.atomic
def register_node(name: str, project_name: str, *, rotate: bool = False) -> tuple[Node, str, bool]:
    """Create a node (and its project if new) or, with ``rotate``, give an existing node a new token.

    Returns the node, its new token (shown once; only a key derived from it is stored) and whether the
    project was created.
    """
    name, project_name = name.strip(), project_name.strip()
    if not name or len(name) > MAX_NAME_CHARS or any(c.isspace() for c in name):
        raise NodeError(f"invalid node name {name!r}: use 1–{MAX_NAME_CHARS} characters without spaces")
    if not project_name or len(project_name) > 100:
        raise NodeError(f"invalid project name {project_name!r}")
    project, created = Project.objects.get_or_create(name=project_name)
    token = new_token()
    key_hex = signing_key(token).hex()
    node = Node.objects.filter(name=name).first()
    if node is None:
        node = Node.objects.create(name=name, project=project, signing_key_hex=key_hex)
    elif not rotate:
        raise NodeError(f"node {name!r} already exists (project {node.project.name!r}); use --rotate for a new token")
    elif node.project_id != project.pk:
        raise NodeError(f"node {name!r} belongs to project {node.project.name!r}, not {project_name!r}")
    else:
        node.signing_key_hex = key_hex
        node.save(update_fields=["signing_key_hex"])
    return node, token, created

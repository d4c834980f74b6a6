"""Registering nodes and issuing tokens: a node's own token, or a project's enrolment token.

Every token is shown once, when issued; the app stores only the key derived from it
(``wattwise_agent.wire.signing_key``) and its public key id (``wattwise_agent.wire.key_id``), by which it finds the
token that signed a message.
"""

from __future__ import annotations

import secrets

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from dashboard.projects.models import Project
from dashboard.telemetry.models import EnrolmentToken, Node
from wattwise_agent.wire import MAX_NAME_CHARS, key_id, signing_key

MAX_PROJECT_CHARS = 100
MAX_TOKEN_NAME_CHARS = 100


class NodeError(ValueError):
    pass


def new_token() -> str:
    return "ww_" + secrets.token_urlsafe(32)


def check_node_name(name: str) -> str:
    """The name as a node is registered under, or NodeError saying what is accepted."""
    if not name or len(name) > MAX_NAME_CHARS or any(c.isspace() for c in name):
        raise NodeError(f"invalid node name {name!r}: use 1–{MAX_NAME_CHARS} characters without spaces")
    return name


def _project(project_name: str) -> tuple[Project, bool]:
    project_name = project_name.strip()
    if not project_name or len(project_name) > MAX_PROJECT_CHARS:
        raise NodeError(f"invalid project name {project_name!r}: use 1–{MAX_PROJECT_CHARS} characters")
    return Project.objects.get_or_create(name=project_name)


@transaction.atomic
def register_node(name: str, project_name: str, *, rotate: bool = False) -> tuple[Node, str, bool]:
    """Create a node (and its project if new) or, with ``rotate``, give an existing node a token of its own.

    Names are unique within a project. Rotating replaces the node's token (its old one stops working),
    or gives a node that enrolled itself a token of its own (its enrolment token then no longer signs
    for it). Returns the node, its new token (shown once) and whether the project was created.
    """
    name = check_node_name(name.strip())
    project, created = _project(project_name)
    token = new_token()
    keys = {"signing_key_hex": signing_key(token).hex(), "key_id": key_id(token)}
    node = Node.objects.filter(project=project, name=name).first()
    if node is None and rotate:
        elsewhere = sorted(Node.objects.filter(name=name).values_list("project__name", flat=True))
        if elsewhere:
            raise NodeError(f"node {name!r} is not in project {project.name!r} but in {', '.join(map(repr, elsewhere))}")
    if node is None:
        node = Node.objects.create(name=name, project=project, **keys)
    elif not rotate:
        raise NodeError(f"node {name!r} already exists in project {project.name!r}; use --rotate for a new token")
    else:
        for field, value in keys.items():
            setattr(node, field, value)
        node.save(update_fields=list(keys))
    return node, token, created


@transaction.atomic
def create_enrolment_token(
    project_name: str, name: str = "", *, created_by: User | None = None
) -> tuple[EnrolmentToken, str, bool]:
    """Issue an enrolment token for a project (created if new): nodes holding it register themselves.

    ``name`` says what it is for (default ``enrolment-N``). Returns the token's row, the token (shown
    once) and whether the project was created.
    """
    project, created = _project(project_name)
    name = name.strip() or f"enrolment-{EnrolmentToken.objects.filter(project=project).count() + 1}"
    if len(name) > MAX_TOKEN_NAME_CHARS:
        raise NodeError(f"invalid token name {name!r}: use at most {MAX_TOKEN_NAME_CHARS} characters")
    if EnrolmentToken.objects.filter(project=project, name=name).exists():
        raise NodeError(f"project {project.name!r} already has an enrolment token named {name!r}")
    token = new_token()
    row = EnrolmentToken.objects.create(
        project=project, name=name, key_id=key_id(token), signing_key_hex=signing_key(token).hex(),
        created_by=created_by,
    )
    return row, token, created


def revoke_enrolment_token(token: EnrolmentToken) -> int:
    """Revoke the token: every node signing with it is refused from now on (within seconds in workers).

    Returns how many nodes enrolled with it. Revoking twice keeps the first time.
    """
    EnrolmentToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    return token.nodes.count()

"""Who belongs to a project, and as what: adding, promoting, demoting and removing members.

Plain functions used by the members page and by ``manage.py add_member`` / ``remove_member``, so both keep
the same rule: a project that has an admin keeps at least one (make another member admin first). A
project may have none (projects made before roles existed, or by ``create_node``); then only a superuser
can manage its members, on the page or with the command.

Every refusal raises ``MembershipError`` with a message saying what is wrong and what would work, and
changes nothing; every change returns what was done, in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from dashboard.projects.models import Membership, Project

Role = Membership.Role
COMMAND = "python manage.py add_member USERNAME PROJECT [--admin]"


class MembershipError(ValueError):
    """A membership change refused; nothing was changed."""


@dataclass(frozen=True)
class Change:
    """What a call did: ``done`` is False when the membership already was as asked."""

    done: bool
    message: str


def find_user(username: str, *, must_be_active: bool = True) -> Any:
    """The user named ``username``; one being added must be active (a deactivated one may be removed)."""
    User = get_user_model()
    try:
        user = User.objects.get(**{User.USERNAME_FIELD: username.strip()})
    except User.DoesNotExist:
        raise MembershipError(
            f"no user named {username.strip()!r}: they need an account first (the Django admin, "
            "or python manage.py createsuperuser)"
        ) from None
    if must_be_active and not user.is_active:
        raise MembershipError(f"user {user.get_username()!r} is deactivated: reactivate them in the Django admin first")
    return user


def find_project(name: str) -> Project:
    try:
        return Project.objects.get(name=name)
    except Project.DoesNotExist:
        names = ", ".join(Project.objects.values_list("name", flat=True)[:20]) or "none yet"
        raise MembershipError(
            f"no project named {name!r} (projects: {names}); projects are made by "
            "python manage.py create_node NODE --project PROJECT, or in the Django admin"
        ) from None


def admins(project: Project) -> list[Any]:
    """The project's admins (users), by username."""
    return [m.user for m in project.memberships.filter(role=Role.ADMIN).select_related("user")]


def site_admins() -> list[Any]:
    """Active superusers: they can manage every project's members, including projects without an admin."""
    return list(get_user_model().objects.filter(is_superuser=True, is_active=True).order_by("username"))


def add_member(project: Project, user: Any, role: Role | None = None) -> Change:
    """Make ``user`` a member of ``project`` (as ``role``, default member). Someone already a member keeps
    their role unless ``role`` is given, so running it twice changes nothing."""
    name = f"{user.get_username()!r}"
    with transaction.atomic():
        _lock(project)
        membership = Membership.objects.filter(project=project, user=user).first()
        if membership is None:
            Membership.objects.create(project=project, user=user, role=role or Role.MEMBER)
            return Change(True, f"added {name} to {project.name!r} as {_as(role or Role.MEMBER)}")
    if role is None:
        return Change(False, f"{name} is already {_as(membership.role)} of {project.name!r}: nothing changed")
    return set_role(project, user, role)


def set_role(project: Project, user: Any, role: Role) -> Change:
    name = f"{user.get_username()!r}"
    with transaction.atomic():
        _lock(project)
        membership = _membership(project, user)
        if membership.role == role:
            return Change(False, f"{name} is already {_as(role)} of {project.name!r}: nothing changed")
        if role != Role.ADMIN:
            _keep_an_admin(membership, f"demote {name}")
        membership.role = role
        membership.save(update_fields=["role"])
    verb = "made" if role == Role.ADMIN else "demoted"
    return Change(True, f"{verb} {name} {_as(role)} of {project.name!r}")


def remove_member(project: Project, user: Any) -> Change:
    name = f"{user.get_username()!r}"
    with transaction.atomic():
        _lock(project)
        membership = Membership.objects.filter(project=project, user=user).first()
        if membership is None:
            return Change(False, f"{name} is not a member of {project.name!r}: nothing changed")
        _keep_an_admin(membership, f"remove {name}")
        membership.delete()
    return Change(True, f"removed {name} from {project.name!r}")


def _as(role: str) -> str:
    return "an admin" if role == Role.ADMIN else "a member"


def _lock(project: Project) -> None:
    # Changes to one project's members take turns, so two admins demoting each other at once cannot
    # leave it without one.
    Project.objects.select_for_update().get(pk=project.pk)


def _membership(project: Project, user: Any) -> Membership:
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is None:
        raise MembershipError(
            f"{user.get_username()!r} is not a member of {project.name!r}: add them first"
        )
    return membership


def _keep_an_admin(membership: Membership, action: str) -> None:
    if not membership.is_admin:
        return
    others = Membership.objects.filter(project=membership.project_id, role=Role.ADMIN).exclude(pk=membership.pk)
    if not others.exists():
        raise MembershipError(
            f"cannot {action}: they are the only admin of {membership.project.name!r}, and a project must "
            "keep one. Make another member admin first."
        )

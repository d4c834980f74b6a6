"""Who may see and change what: members see their projects; managing a project's carbon accounting
(sites, node assignments, defaults, contracts, prices) needs staff status or the ``carbon.change_site``
permission as well, because it changes figures everyone in the project reports."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from dashboard.projects.models import Project


def member_projects(user: Any) -> QuerySet[Project]:
    return Project.objects.filter(members=user).order_by("name")


def project_for(user: Any, pk: int) -> Project:
    """The project if ``user`` is a member, else 404 (never reveal other projects exist)."""
    return get_object_or_404(member_projects(user), pk=pk)


def can_manage(user: Any, project: Project) -> bool:
    return bool(user.is_staff or user.has_perm("carbon.change_site"))


def can_import(user: Any) -> bool:
    """Intensity data is shared by all projects: any project member (or staff) may import it."""
    return bool(user.is_staff or member_projects(user).exists())

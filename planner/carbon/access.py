"""Who may change carbon settings. Seeing a project's figures is the one access rule of the projects app
(``Project.objects.for_user``); managing its carbon accounting (sites, node assignments, defaults,
contracts, prices) needs staff status or the ``carbon.change_site`` permission as well, because it
changes figures everyone in the project reports."""

from __future__ import annotations

from dashboard.projects.models import Project, Visitor


def can_manage(user: Visitor, project: Project) -> bool:
    return bool(user.is_staff or user.has_perm("carbon.change_site"))


def can_import(user: Visitor) -> bool:
    """Any project member may import intensity data for their project; staff may import shared data."""
    return bool(user.is_staff or Project.objects.for_user(user).exists())


def may_import_for(user: Visitor, project: Project | None) -> bool:
    """Whether ``user`` may import data owned by ``project``: their own project's, or (staff only) the
    shared data every project's figures use (``project`` None)."""
    if project is None:
        return bool(user.is_active and user.is_staff)
    return Project.objects.for_user(user).filter(pk=project.pk).exists()

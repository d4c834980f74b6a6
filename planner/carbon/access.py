"""Who may change carbon settings. Seeing a project's figures is the one access rule of the projects app
(``Project.objects.for_user``); managing its carbon accounting (sites, node assignments, defaults,
contracts, prices) needs staff status or the ``carbon.change_site`` permission as well, because it
changes figures everyone in the project reports."""

from __future__ import annotations

from dashboard.projects.models import Project, Visitor


def can_manage(user: Visitor, project: Project) -> bool:
    return bool(user.is_staff or user.has_perm("carbon.change_site"))


def can_import(user: Visitor) -> bool:
    """Intensity data is shared by all projects: any project member (or staff) may import it."""
    return bool(user.is_staff or Project.objects.for_user(user).exists())

"""Pages: the projects a user sees, and each project's members.

Anyone who sees a project (``Project.objects.for_user``) may read its members; its admins and superusers
(``Project.objects.administered_by``) may add, promote, demote and remove them. Every change is a POST
(with Django's CSRF check) done by ``dashboard.projects.membership``; a refusal shows the page again with
the reason and changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from dashboard.projects import membership
from dashboard.projects.forms import AddMemberForm, RoleForm
from dashboard.projects.models import Membership, Project


@login_required
def projects(request: HttpRequest) -> HttpResponse:
    # Counted from the prefetched rows: an annotated Count would reuse the access rule's join for a
    # member and count only them.
    visible = Project.objects.for_user(request.user).prefetch_related("memberships__user")
    administered = set(Project.objects.administered_by(request.user).values_list("pk", flat=True))
    rows = []
    for project in visible:
        memberships = project.memberships.all()
        mine = next((m for m in memberships if m.user_id == request.user.pk), None)
        rows.append({
            "project": project,
            "role": mine.role if mine else None,
            "admins": [m.user for m in memberships if m.is_admin],
            "member_count": len(memberships),
            "can_manage": project.pk in administered,
        })
    return render(request, "projects/projects.html", {
        "rows": rows, "site_admins": membership.site_admins() if not rows else [],
    })


@login_required
def members(request: HttpRequest, pk: int) -> HttpResponse:
    return _members_page(request, _visible(request, pk))


@login_required
@require_POST
def add(request: HttpRequest, pk: int) -> HttpResponse:
    project = _administered(request, pk)
    form = AddMemberForm(request.POST)
    if not form.is_valid():
        return _members_page(request, project, add_form=form, status=400)
    try:
        user = membership.find_user(form.cleaned_data["username"])
        change = membership.add_member(project, user, Membership.Role(form.cleaned_data["role"]))
    except membership.MembershipError as exc:
        return _members_page(request, project, add_form=form, error=str(exc), status=400)
    return _done(request, project, change)


@login_required
@require_POST
def change_role(request: HttpRequest, pk: int, user_pk: int) -> HttpResponse:
    project = _administered(request, pk)
    user = get_object_or_404(get_user_model(), pk=user_pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _members_page(request, project, error=f"role: {form.errors['role'][0]}", status=400)
    try:
        change = membership.set_role(project, user, Membership.Role(form.cleaned_data["role"]))
    except membership.MembershipError as exc:
        return _members_page(request, project, error=str(exc), status=400)
    return _done(request, project, change)


@login_required
@require_POST
def remove(request: HttpRequest, pk: int, user_pk: int) -> HttpResponse:
    project = _administered(request, pk)
    user = get_object_or_404(get_user_model(), pk=user_pk)
    try:
        change = membership.remove_member(project, user)
    except membership.MembershipError as exc:
        return _members_page(request, project, error=str(exc), status=400)
    if user.pk == request.user.pk and not Project.objects.for_user(request.user).filter(pk=pk).exists():
        messages.success(request, change.message)
        return redirect("projects:index")  # they left: the project's page is no longer theirs to see
    return _done(request, project, change)


def _visible(request: HttpRequest, pk: int) -> Project:
    return get_object_or_404(Project.objects.for_user(request.user), pk=pk)


def _administered(request: HttpRequest, pk: int) -> Project:
    """The project, if ``request.user`` may change its members: 404 when they cannot see it, 403 when they
    can but are not its admin."""
    project = _visible(request, pk)
    if not Project.objects.administered_by(request.user).filter(pk=pk).exists():
        raise PermissionDenied("only the project's admins (and superusers) can change its members")
    return project


def _done(request: HttpRequest, project: Project, change: membership.Change) -> HttpResponse:
    messages.success(request, change.message)
    return redirect("projects:members", pk=project.pk)


def _members_page(
    request: HttpRequest, project: Project, *, add_form: AddMemberForm | None = None, error: str = "",
    status: int = 200,
) -> HttpResponse:
    # "admin" sorts before "member": admins first.
    rows = list(project.memberships.select_related("user").order_by("role", "user__username"))
    admins = [m.user for m in rows if m.is_admin]
    can_manage = Project.objects.administered_by(request.user).filter(pk=project.pk).exists()
    context: dict[str, Any] = {
        "project": project,
        "memberships": rows,
        "admins": admins,
        "can_manage": can_manage,
        "site_admins": membership.site_admins() if not admins else [],
        "add_form": add_form or AddMemberForm(),
        "roles": Membership.Role.choices,
        "error": error,
        "command": membership.COMMAND,
        # A lone admin's demote and remove buttons would only be refused: the page says why instead.
        "lone_admin": admins[0].pk if len(admins) == 1 else None,
        "is_member": any(m.user_id == request.user.pk for m in rows),
    }
    return render(request, "projects/members.html", context, status=status)

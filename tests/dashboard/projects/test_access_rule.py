"""The one access rule: a user sees the projects they are a member of, and what belongs to them; a
superuser sees every project. It is written once, on the projects app's querysets, and nothing else
filters by membership."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser

from dashboard.projects.models import Membership, Project
from dashboard.telemetry.models import Node, Run
from planner.plans import profiles
from planner.plans.models import FrontierJob, StageProfile
from tests.factories import member
from tests.planner.plans.conftest import SMALL, small_csv, solve_now

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.django_db


def test_a_member_sees_their_projects_and_nothing_of_the_others(django_user_model):
    ana = member("ana", "vision")
    member("bob", "speech")
    assert list(Project.objects.for_user(ana).values_list("name", flat=True)) == ["vision"]


def test_anonymous_and_deactivated_users_see_no_project(django_user_model):
    ana = member("ana", "vision")
    assert not Project.objects.for_user(AnonymousUser()).exists()
    assert not Project.objects.for_user(None).exists()
    ana.is_active = False
    ana.save()
    assert not Project.objects.for_user(ana).exists()


def test_rows_of_a_project_follow_their_project(django_user_model):
    ana = member("ana", "vision")
    member("bob", "speech")
    for name in ("vision", "speech"):
        project = Project.objects.get(name=name)
        Run.objects.create(project=project, name=f"{name}-run")
        Node.objects.create(project=project, name=f"{name}-node", signing_key_hex="00" * 32)
        solve_now(profiles.store_upload(project, small_csv(), name=f"{name}-profile").profile, SMALL)
    assert [r.name for r in Run.objects.for_user(ana)] == ["vision-run"]
    assert [n.name for n in Node.objects.for_user(ana)] == ["vision-node"]
    assert [p.name for p in StageProfile.objects.for_user(ana)] == ["vision-profile"]
    # A frontier belongs to its project through its profile.
    assert [j.profile.name for j in FrontierJob.objects.for_user(ana)] == ["vision-profile"]


def test_a_superuser_sees_every_project_and_what_belongs_to_it(django_user_model):
    member("ana", "vision")
    member("bob", "speech")
    root = django_user_model.objects.create_superuser("root", password="pw")
    for name in ("vision", "speech"):
        Run.objects.create(project=Project.objects.get(name=name), name=f"{name}-run")
    assert list(Project.objects.for_user(root).values_list("name", flat=True)) == ["speech", "vision"]
    assert sorted(r.name for r in Run.objects.for_user(root)) == ["speech-run", "vision-run"]
    # ... and manages every project's members, members of it or not.
    assert Project.objects.administered_by(root).count() == 2


def test_a_deactivated_superuser_sees_nothing(django_user_model):
    member("ana", "vision")
    root = django_user_model.objects.create_superuser("root", password="pw", is_active=False)
    assert not Project.objects.for_user(root).exists()
    assert not Project.objects.administered_by(root).exists()


def test_only_admins_of_a_project_administer_it(django_user_model):
    ana = member("ana", "vision", "speech")
    Membership.objects.filter(user=ana, project__name="vision").update(role=Membership.Role.ADMIN)
    assert list(Project.objects.administered_by(ana).values_list("name", flat=True)) == ["vision"]
    assert not Project.objects.administered_by(AnonymousUser()).exists()


def test_what_depends_on_the_rule_follows_it_for_superusers(django_user_model):
    """Intensity imports are open to anyone who sees a project; a superuser sees them all."""
    from planner.carbon.access import can_import

    member("ana", "vision")
    root = django_user_model.objects.create_superuser("root", password="pw")
    root.is_staff = False  # a superuser who is not staff still sees every project
    assert can_import(root)
    assert not can_import(member("eve"))


def test_no_code_outside_the_projects_app_filters_by_membership():
    membership = re.compile(r"members(=|__)|memberships__user(__\w+)?=|Membership\.objects")
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("dashboard", "planner")
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
        and path not in (ROOT / "dashboard" / "projects" / "models.py", ROOT / "dashboard" / "projects" / "membership.py")
        and membership.search(path.read_text())
    ]
    assert offenders == [], "use Project.objects.for_user / Model.objects.for_user instead"

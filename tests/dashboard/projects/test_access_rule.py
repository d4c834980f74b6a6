"""The one access rule: a user sees the projects they are a member of, and what belongs to them; it is
written once, on the projects app's querysets, and nothing else filters by membership."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser

from dashboard.projects.models import Project
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


def test_no_code_outside_the_projects_app_filters_by_membership():
    membership = re.compile(r"members(=|__)")
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("dashboard", "planner")
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts and path != ROOT / "dashboard" / "projects" / "models.py"
        and membership.search(path.read_text())
    ]
    assert offenders == [], "use Project.objects.for_user / Model.objects.for_user instead"

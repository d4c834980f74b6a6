"""A signed-in user in no project is told how to get into one, not "No runs yet"; a superuser sees every
project's runs without being a member."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dashboard.telemetry import ingest
from tests.factories import member, register, simple_batch

pytestmark = pytest.mark.django_db


def test_a_user_in_no_project_is_told_who_can_add_them(client, django_user_model):
    ingest.ingest_batch(simple_batch(register("node-a", "vision"), run="their-run"))
    django_user_model.objects.create_superuser("root", password="pw", email="root@example.org",
                                               first_name="Rita", last_name="Root")
    client.force_login(member("newcomer"))
    html = client.get(reverse("runs")).content.decode()
    assert "You are not in any project yet" in html
    assert "Rita Root &lt;root@example.org&gt;" in html
    assert "python manage.py add_member newcomer PROJECT" in html
    assert "No runs yet" not in html and "their-run" not in html


def test_a_member_of_a_project_without_runs_still_sees_no_runs_yet(client):
    client.force_login(member("ana", "vision"))
    html = client.get(reverse("runs")).content.decode()
    assert "No runs yet" in html and "You are not in any project yet" not in html


def test_a_superuser_sees_every_projects_runs(client, django_user_model):
    ingest.ingest_batch(simple_batch(register("node-a", "vision"), run="vision-run"))
    ingest.ingest_batch(simple_batch(register("node-b", "speech"), run="speech-run", uuid="GPU-2"))
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    html = client.get(reverse("runs")).content.decode()
    assert "vision-run" in html and "speech-run" in html


def test_a_superuser_with_no_project_at_all_is_told_how_projects_are_made(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    html = client.get(reverse("runs")).content.decode()
    assert "There are no projects yet" in html and "create_node NODE --project PROJECT" in html

"""Pages need a login, and a user sees only the runs of projects they belong to."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dashboard.telemetry import ingest
from dashboard.telemetry.models import Run, RunGpu
from tests.factories import member, register, simple_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_projects():
    ours, theirs = register("node-a", "vision"), register("node-b", "speech")
    ingest.ingest_batch(simple_batch(ours, run="our-run"))
    ingest.ingest_batch(simple_batch(theirs, run="their-run", uuid="GPU-9"))
    return Run.objects.get(name="our-run"), Run.objects.get(name="their-run")


@pytest.mark.parametrize("page", ["runs", "run", "run_summary", "run_gpu"])
def test_anonymous_users_are_sent_to_login(client, two_projects, page):
    run = two_projects[0]
    args = {"runs": [], "run": [run.pk], "run_summary": [run.pk],
            "run_gpu": [run.pk, RunGpu.objects.get(run=run).pk]}[page]
    response = client.get(reverse(page, args=args))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_runs_list_shows_only_the_users_projects(client, two_projects):
    client.force_login(member("ana", "vision"))
    html = client.get(reverse("runs")).content.decode()
    assert "our-run" in html
    assert "their-run" not in html


@pytest.mark.parametrize("page", ["run", "run_summary", "run_gpu"])
def test_another_projects_run_is_not_found(client, two_projects, page):
    their_run = two_projects[1]
    client.force_login(member("ana", "vision"))
    args = [their_run.pk] if page != "run_gpu" else [their_run.pk, RunGpu.objects.get(run=their_run).pk]
    assert client.get(reverse(page, args=args)).status_code == 404


def test_a_gpu_of_another_run_cannot_be_reached_through_ones_own_run(client, two_projects):
    ours, theirs = two_projects
    client.force_login(member("ana", "vision"))
    response = client.get(reverse("run_gpu", args=[ours.pk, RunGpu.objects.get(run=theirs).pk]))
    assert response.status_code == 404


def test_a_user_in_no_project_sees_no_runs(client, two_projects):
    client.force_login(member("bob"))
    html = client.get(reverse("runs")).content.decode()
    assert "our-run" not in html and "their-run" not in html
    assert "You are not in any project yet" in html  # and who can add them (test_no_project.py)


def test_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"Log in to Wattwise" in response.content

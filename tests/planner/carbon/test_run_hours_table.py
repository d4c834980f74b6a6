"""A run's hour-by-hour carbon table is its own page, which the run page loads when it is opened."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dashboard.telemetry.models import Run
from tests.factories import member, register
from tests.planner.carbon.support import stream_hours

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(client, django_capture_on_commit_callbacks):
    node = register("n1", "p")
    with django_capture_on_commit_callbacks(execute=True):
        stream_hours(node, "r", [1.0, 2.0], zone="DE")
    client.force_login(member("ana", "p"))
    return Run.objects.get()


def test_the_run_page_links_the_table_instead_of_rendering_it(client, run):
    html = client.get(reverse("run", args=[run.pk])).content.decode()
    assert f'data-fragment="{reverse("carbon:run_hours", args=[run.pk])}?fragment=1"' in html
    assert "2 node-hours" in html
    assert "Why this figure" not in html


def test_the_fragment_is_the_table_with_one_row_per_node_hour(client, run):
    html = client.get(reverse("carbon:run_hours", args=[run.pk]), {"fragment": "1"}).content.decode()
    assert html.lstrip().startswith("<table") and html.count("<tr>") == 3  # header + 2 hours
    assert "<html" not in html


def test_the_table_is_a_page_of_its_own_without_javascript(client, run):
    html = client.get(reverse("carbon:run_hours", args=[run.pk])).content.decode()
    assert "<html" in html and "Why this figure" in html


def test_another_projects_run_table_is_not_found(client, run):
    client.force_login(member("bo", "other"))
    assert client.get(reverse("carbon:run_hours", args=[run.pk])).status_code == 404

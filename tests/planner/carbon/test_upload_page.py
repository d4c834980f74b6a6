"""The intensity data page: upload a file, see what is stored; a bad file is refused whole."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase
from django.urls import reverse

from dashboard.projects.models import Project
from planner.carbon.models import ImportedRun, IntensityImport, IntensityRow
from tests.factories import member
from tests.planner.carbon.support import T0, em_hourly_csv, fixture, snapshot

pytestmark = pytest.mark.django_db


def upload(client, name: str, content: bytes, **fields: str):
    """Post a file as ana's project's own data (unless ``fields`` say otherwise); its import job runs when
    the request commits (here, with tasks eager, in the request), then the page is read."""
    vision = Project.objects.filter(name="vision").first()
    data = {"file": SimpleUploadedFile(name, content), "basis": "lifecycle", "timezone": "UTC",
            "project": str(vision.pk) if vision else "", **fields}
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(reverse("carbon:data"), data)
    return client.get(reverse("carbon:data")) if response.status_code == 302 else response


@pytest.fixture
def ana(client):
    user = member("ana", "vision")
    client.force_login(user)
    return user


def test_an_hourly_csv_is_imported_and_listed(client, ana):
    response = upload(client, "DE_2026_hourly.csv", em_hourly_csv("DE", T0, [300, 310, 320]).encode())
    html = response.content.decode()
    assert "3 rows added, 0 updated, 0 unchanged for DE" in html
    assert 'id="coverage-table"' in html and "Electricity Maps (CSV import)" in html
    assert IntensityImport.objects.get().imported_by == ana


def test_a_broken_upload_shows_the_line_and_imports_nothing(client, ana):
    upload(client, "SE-SE3_2024_hourly.csv", fixture("SE-SE3_2024_hourly.csv"))
    before = snapshot()
    gap = em_hourly_csv("DE", T0, [300, 310, 320]).replace("2026-01-01 01:00:00", "2026-01-01 04:00:00")
    html = upload(client, "DE_2026_hourly.csv", gap.encode()).content.decode()
    assert "gap in a series that must be continuous" in html and "Nothing was imported." in html
    assert snapshot() == before


def test_uploading_the_same_file_twice_changes_nothing(client, ana):
    content = em_hourly_csv("DE", T0, [300, 310]).encode()
    upload(client, "DE_2026_hourly.csv", content)
    before = snapshot()
    html = upload(client, "DE_2026_hourly.csv", content).content.decode()
    assert "nothing new" in html
    assert snapshot() == before


def test_a_codecarbon_upload_goes_into_a_project_the_user_belongs_to(client, ana):
    project = Project.objects.get(name="vision")
    other = Project.objects.create(name="secret")
    html = upload(client, "emissions.csv", fixture("codecarbon_emissions.csv"), project=str(other.pk)).content.decode()
    assert "Select a valid choice" in html and ImportedRun.objects.count() == 0
    upload(client, "emissions.csv", fixture("codecarbon_emissions.csv"), project=str(project.pk))
    assert ImportedRun.objects.filter(project=project).count() == 2


def test_a_bad_zone_or_time_zone_is_a_form_error(client, ana):
    content = em_hourly_csv("DE", T0, [300]).encode()
    html = upload(client, "DE_2026_hourly.csv", content, zone="aws:nowhere-1", timezone="Mars/Olympus").content.decode()
    assert "unknown cloud region" in html and "Unknown time zone" in html
    assert IntensityRow.objects.count() == 0


def test_users_in_no_project_may_look_but_not_import(client):
    client.force_login(member("bob"))
    assert client.get(reverse("carbon:data")).status_code == 200
    response = upload(client, "DE_2026_hourly.csv", em_hourly_csv("DE", T0, [300]).encode())
    assert response.status_code == 403 and IntensityRow.objects.count() == 0

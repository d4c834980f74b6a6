"""A user uploads a profile into one of their projects, or adds the shipped sample; the plan form then
offers sensible defaults."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from planner.plans.models import StageProfile
from planner.plans.profiles import SAMPLE_FILE, SAMPLES_DIR
from tests.factories import member

pytestmark = pytest.mark.django_db

GPT3_CSV = (SAMPLES_DIR / SAMPLE_FILE).read_bytes()


def upload(client, project: str, data: bytes, filename: str = "gpt3.csv", **extra):
    from dashboard.projects.models import Project

    return client.post(reverse("planner:upload"), {
        "project": Project.objects.get(name=project).pk, "file": SimpleUploadedFile(filename, data, "text/csv"), **extra,
    })


def test_uploading_the_gpt3_profile_stores_it_and_opens_its_page(client):
    client.force_login(member("ana", "vision"))
    response = upload(client, "vision", GPT3_CSV, gpu_name="NVIDIA A100-SXM4-80GB")
    profile = StageProfile.objects.get()
    assert response.status_code == 302 and response["Location"] == profile.get_absolute_url()
    assert (profile.name, profile.project.name, profile.source) == ("gpt3", "vision", StageProfile.Source.UPLOAD)
    assert (profile.num_stages, profile.num_rows, len(profile.frequencies_mhz)) == (8, 608, 38)
    assert profile.csv_text.encode() == GPT3_CSV
    page = client.get(profile.get_absolute_url()).content.decode()
    assert "Plan a frontier" in page and 'data-plot="chart-profile"' in page


def test_the_plan_form_defaults_are_the_artifacts_case(client):
    client.force_login(member("ana", "vision"))
    upload(client, "vision", GPT3_CSV, gpu_name="NVIDIA A100-SXM4-80GB")
    form = client.get(StageProfile.objects.get().get_absolute_url()).context["form"]
    assert form.initial == {"num_microbatches": 12, "unit_time_ms": 1.0, "p_blocking_w": 83.64,
                            "schedule": "1f1b", "mode": "default"}
    assert "A100" in form.p_blocking_basis


def test_an_a40_profile_defaults_to_the_a40_blocking_power(client):
    client.force_login(member("ana", "vision"))
    upload(client, "vision", GPT3_CSV, gpu_name="NVIDIA A40")
    form = client.get(StageProfile.objects.get().get_absolute_url()).context["form"]
    assert form.initial["p_blocking_w"] == 70.38


def test_uploading_the_same_profile_again_opens_the_stored_one(client):
    client.force_login(member("ana", "vision"))
    upload(client, "vision", GPT3_CSV)
    response = upload(client, "vision", GPT3_CSV, filename="again.csv", name="another name")
    assert StageProfile.objects.count() == 1
    assert response["Location"] == StageProfile.objects.get().get_absolute_url()
    assert "already stored" in client.get(response["Location"]).content.decode()


def test_a_profile_cannot_be_uploaded_into_someone_elses_project(client):
    member("bob", "speech")
    client.force_login(member("ana", "vision"))
    response = upload(client, "speech", GPT3_CSV)
    assert response.status_code == 400
    assert not StageProfile.objects.exists()


def test_the_sample_is_added_to_a_chosen_project_once(client):
    from dashboard.projects.models import Project

    client.force_login(member("ana", "vision"))
    for _ in range(2):
        response = client.post(reverse("planner:sample"), {"project": Project.objects.get(name="vision").pk})
    profile = StageProfile.objects.get()
    assert response["Location"] == profile.get_absolute_url()
    assert profile.source == StageProfile.Source.SAMPLE and profile.num_stages == 8 and profile.p_blocking_w == 83.64


def test_the_planner_page_lists_only_the_users_profiles(client):
    member("bob", "speech")
    client.force_login(member("ana", "vision"))
    upload(client, "vision", GPT3_CSV, filename="ours.csv")
    client.force_login(member("carol", "speech"))
    upload(client, "speech", GPT3_CSV.replace(b"0.05016166687011708", b"0.05016166687011709"), filename="theirs.csv")
    client.force_login(member("dave", "vision"))
    html = client.get(reverse("planner:index")).content.decode()
    assert ">ours<" in html and ">theirs<" not in html


def test_the_planner_link_is_in_the_navigation(client):
    client.force_login(member("ana", "vision"))
    assert f'href="{reverse("planner:index")}"' in client.get(reverse("runs")).content.decode()

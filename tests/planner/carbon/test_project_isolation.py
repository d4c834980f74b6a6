"""Intensity data has an owner: a project member imports data for their own project, which changes only that
project's figures; shared data (for every project) is staff's; nobody sees another project's imports.

Issue 15's case: a member of one project uploaded 4 rows at 9,999 g/kWh and another project's run went
from 59.48 g to 1,739.10 g, and that project's members saw the uploader's name and file.
"""

from __future__ import annotations

import warnings
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import TestCase
from django.urls import reverse

from dashboard.projects.models import Project
from dashboard.projects.tokens import issue_token
from dashboard.telemetry.models import Run
from planner.carbon.models import ImportJob, IntensityImport, IntensityRow, RunCarbon
from tests.api_world import Api
from tests.factories import member, register
from tests.planner.carbon.support import T0, em_hourly_csv, fixture, recompute_figures, snapshot, stream_hours

pytestmark = pytest.mark.django_db

SHARED_G_PER_KWH = [300.0, 310.0, 320.0, 330.0]
FORGED = [9999.0] * 4
ENERGY_KWH = [0.05, 0.05, 0.05, 0.05]
SECRET_FILE = "aurora-private-DE_2026_hourly.csv"


def emissions_g(run_name: str) -> float:
    return RunCarbon.objects.get(run__name=run_name).emissions_g


@pytest.fixture
def world(client, tmp_path, settings):
    """aurora (ana) and beta (bob) each run a job in DE; staff shared DE's hourly intensity for everyone."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    ana, bob = member("zed_uploader", "aurora"), member("bob", "beta")
    shared = tmp_path / "DE_2026_hourly.csv"
    shared.write_text(em_hourly_csv("DE", T0, SHARED_G_PER_KWH))
    call_command("import_intensity", str(shared), stdout=StringIO())
    stream_hours(register("node-a", "aurora"), "aurora-run", ENERGY_KWH, zone="DE")
    stream_hours(register("node-b", "beta"), "beta-run", ENERGY_KWH, zone="DE")
    recompute_figures()
    return ana, bob


def post_upload(client, content: bytes, name: str = SECRET_FILE, **fields: str):
    """Upload through the data page; the import job runs as the request commits (tasks are eager here)."""
    data = {"file": SimpleUploadedFile(name, content), "basis": "lifecycle", "timezone": "UTC", **fields}
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(reverse("carbon:data"), data)
    return client.get(reverse("carbon:data")) if response.status_code == 302 else response


def forged_csv() -> bytes:
    return em_hourly_csv("DE", T0, FORGED).encode()


def test_the_issues_forged_upload_changes_only_the_uploaders_project(client, world):
    ana, _ = world
    beta_before, aurora_before = emissions_g("beta-run"), emissions_g("aurora-run")
    client.force_login(ana)
    aurora = Project.objects.get(name="aurora")
    html = post_upload(client, forged_csv(), project=str(aurora.pk)).content.decode()
    assert "4 rows added" in html
    recompute_figures()
    assert emissions_g("beta-run") == beta_before  # exactly: beta's figure used none of aurora's rows
    expected = sum(0.05 * 9999.0 for _ in FORGED)  # aurora's own rows now come before the shared ones
    assert emissions_g("aurora-run") == pytest.approx(expected) and aurora_before == pytest.approx(
        sum(0.05 * g for g in SHARED_G_PER_KWH)
    )
    assert IntensityRow.objects.filter(project=aurora).count() == 4
    assert IntensityRow.objects.filter(project__isnull=True, intensity_g_per_kwh=9999.0).count() == 0


def test_a_member_cannot_import_for_another_project_or_for_everyone(client, world):
    ana, _ = world
    beta = Project.objects.get(name="beta")
    client.force_login(ana)
    before, beta_before = snapshot(), emissions_g("beta-run")
    attempts = [
        post_upload(client, forged_csv(), project=str(beta.pk)),  # another project's data
        post_upload(client, forged_csv(), project=""),  # shared data: staff only
        post_upload(client, forged_csv()),  # no project named at all
        post_upload(client, fixture("codecarbon_emissions.csv"), "emissions.csv", project=str(beta.pk)),
    ]
    for response in attempts:
        assert response.status_code == 200
    assert "Select a valid choice" in attempts[0].content.decode()
    assert "only staff may import data shared by every project" in attempts[1].content.decode()
    recompute_figures()
    assert snapshot() == before and emissions_g("beta-run") == beta_before


def api_upload(client, token: str, content: bytes, **fields: str):
    """``POST /api/carbon/imports`` with a bearer token; the job runs as the request commits (eager here)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post("/api/carbon/imports", {"file": SimpleUploadedFile(SECRET_FILE, content), **fields},
                           headers={"Authorization": f"Bearer {token}"})


def test_the_api_takes_a_members_upload_for_their_project_only(client, world):
    ana, bob = world
    token = issue_token(ana)
    aurora, beta = Project.objects.get(name="aurora"), Project.objects.get(name="beta")
    before, beta_before = snapshot(), emissions_g("beta-run")
    assert api_upload(client, token, forged_csv(), project_id=str(beta.pk)).status_code == 404
    refused = api_upload(client, token, forged_csv())
    assert refused.status_code == 403 and "only staff" in refused.json()["detail"]
    assert api_upload(client, token, b"not a file", project_id=str(aurora.pk), timezone="Mars/Olympus").status_code == 400
    recompute_figures()
    assert snapshot() == before and emissions_g("beta-run") == beta_before

    accepted = api_upload(client, token, forged_csv(), project_id=str(aurora.pk))
    assert accepted.status_code == 202
    job = Api(client, token).get(f"/carbon/imports/jobs/{accepted.json()['id']}").json()
    assert job["state"] == "done" and job["project_id"] == aurora.pk and "4 rows added" in job["message"]
    recompute_figures()
    assert emissions_g("beta-run") == beta_before
    # Another project's member cannot follow it.
    assert Api(client, issue_token(bob)).get(f"/carbon/imports/jobs/{job['id']}").status_code == 404


def test_an_accepted_api_upload_answers_202_without_a_deprecation_warning(client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    ana = member("ana", "aurora")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        accepted = api_upload(client, issue_token(ana), forged_csv(),
                              project_id=str(Project.objects.get(name="aurora").pk))
    assert accepted.status_code == 202 and accepted.json()["state"] in ("queued", "running", "done")
    assert [str(w.message) for w in caught if "Returning tuple" in str(w.message)] == []  # ninja's Status


def test_no_page_of_another_project_takes_a_post_from_a_member(client, world):
    ana, _ = world
    beta = Project.objects.get(name="beta")
    client.force_login(ana)
    before, beta_before = snapshot(), emissions_g("beta-run")
    for name in ("carbon:project", "carbon:sites", "carbon:preferences", "carbon:advice", "carbon:offsets"):
        response = client.post(reverse(name, args=[beta.pk]), {"where": "DE", "pue": "5", "default_where": "PL"})
        assert response.status_code == 404, name
    recompute_figures()
    assert snapshot() == before and emissions_g("beta-run") == beta_before


def test_staff_import_shared_data_and_it_changes_every_projects_figures(client, world):
    staff = member("sam")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    html = post_upload(client, em_hourly_csv("DE", T0, [100.0] * 4).encode(), "DE_2026_hourly.csv",
                       project="").content.decode()
    assert "0 rows added, 4 updated" in html
    recompute_figures()
    assert emissions_g("beta-run") == pytest.approx(0.2 * 100.0) == emissions_g("aurora-run")


def test_the_command_imports_a_projects_own_data_with_project(tmp_path, world):
    beta_before = emissions_g("beta-run")
    path = tmp_path / "DE_2026_hourly.csv"
    path.write_text(em_hourly_csv("DE", T0, FORGED))
    call_command("import_intensity", str(path), "--project", "aurora", stdout=StringIO())
    recompute_figures()
    assert emissions_g("beta-run") == beta_before
    assert emissions_g("aurora-run") == pytest.approx(0.2 * 9999.0)


def test_another_projects_names_users_files_and_values_are_never_shown(client, world):
    ana, bob = world
    client.force_login(ana)
    post_upload(client, forged_csv(), project=str(Project.objects.get(name="aurora").pk))
    assert IntensityImport.objects.filter(filename=SECRET_FILE).exists()
    client.force_login(bob)
    api = Api(client, issue_token(bob))
    seen = [
        client.get(reverse("carbon:data")).content.decode(),
        client.get(reverse("carbon:index")).content.decode(),
        api.get("/carbon/imports").content.decode(),
        api.get("/carbon/datasets").content.decode(),
        api.get("/carbon/intensity", zone="DE").content.decode(),
    ]
    for text in seen:
        assert SECRET_FILE not in text and "aurora" not in text and "zed_uploader" not in text
        assert "9999" not in text and "9,999" not in text
    assert "DE_2026_hourly.csv" in seen[0] and "shared" in seen[0]  # the shared import is listed
    assert [v["intensity_g_per_kwh"] for v in api.get("/carbon/intensity", zone="DE").json()["items"]] == (
        SHARED_G_PER_KWH
    )
    # ana sees her own import and values beside the shared ones.
    client.force_login(ana)
    assert SECRET_FILE in client.get(reverse("carbon:data")).content.decode()
    own = Api(client, issue_token(ana)).get("/carbon/intensity", zone="DE").json()["items"]
    assert sorted(v["intensity_g_per_kwh"] for v in own) == sorted(SHARED_G_PER_KWH + FORGED)
    assert Run.objects.get(name="aurora-run").project.name == "aurora"


def test_an_uploads_progress_is_shown_to_its_uploader_only(client, world):
    ana, bob = world
    client.force_login(ana)
    post_upload(client, forged_csv(), project=str(Project.objects.get(name="aurora").pk))
    job = ImportJob.objects.get(filename=SECRET_FILE)
    progress = client.get(reverse("carbon:import_job", args=[job.pk])).json()
    assert progress["state"] == "done" and progress["rows_read"] == 4 and progress["fraction"] == 1.0
    client.force_login(bob)
    assert client.get(reverse("carbon:import_job", args=[job.pk])).status_code == 404
    assert SECRET_FILE not in client.get(reverse("carbon:data")).content.decode()

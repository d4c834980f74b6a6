"""A bad profile gets a clear error that names the problem, and nothing is stored."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from dashboard.projects.models import Project
from planner.plans import profiles
from planner.plans.models import FrontierJob, StageProfile
from tests.factories import member

pytestmark = pytest.mark.django_db

GOOD = (profiles.SAMPLES_DIR / profiles.SAMPLE_FILE).read_text()
LINES = GOOD.splitlines()


def without(predicate) -> str:
    return "\n".join(line for line in LINES if not predicate(line)) + "\n"


def replace_line(number: int, text: str) -> str:
    """Replace 1-based line ``number`` of the good profile."""
    lines = list(LINES)
    lines[number - 1] = text
    return "\n".join(lines) + "\n"


CASES = {
    "malformed CSV: too few fields": (replace_line(5, "0,forward,1395,0.05"), "line 5: expected 5 fields, found 4"),
    "not a number": (replace_line(3, "0,backward,1410,fast,44.58"), "line 3, column 'time': 'fast' is not a number"),
    "missing column": ("stage,instruction,frequency,time\n0,forward,1410,0.05\n", "column 'energy': missing column"),
    "not a CSV at all": ("\x00\x01 binary junk", "line 1, column 'stage': missing column"),
    "an empty file": ("", "The submitted file is empty"),
    "a blank file": ("\n\n", "the file is empty; expected a header"),
    "only a header": ("stage,instruction,frequency,time,energy\n", "no data rows after the header"),
    "a missing stage": (without(lambda line: line.startswith("3,")), "stage 3: stage missing"),
    "a missing instruction": (without(lambda line: line.startswith("5,backward,")), "stage 5, instruction 'backward': instruction missing"),
    "unknown instruction": (replace_line(2, "0,sideways,1410,0.05,23.8"), "unknown instruction 'sideways'"),
    "zero time": (replace_line(2, "0,forward,1410,0,23.8"), "line 2, column 'time': time must be positive, got 0"),
    "negative energy": (replace_line(2, "0,forward,1410,0.05,-1"), "line 2, column 'energy': energy must be positive, got -1"),
    "NaN energy": (replace_line(2, "0,forward,1410,0.05,nan"), "line 2, column 'energy': 'nan' is not a finite number"),
    "a frequency missing on one stage": (
        without(lambda line: line.startswith("6,forward,1200,")),
        "stage 6, instruction 'forward': frequency 1200 MHz missing",
    ),
    "a duplicate row": (GOOD + LINES[1] + "\n", "duplicate row for stage 0 forward at 1410 MHz"),
}


def post(client, data: bytes | str, filename: str = "bad.csv"):
    raw = data.encode() if isinstance(data, str) else data
    return client.post(reverse("planner:upload"), {
        "project": Project.objects.get(name="vision").pk, "file": SimpleUploadedFile(filename, raw, "text/csv"),
    })


@pytest.fixture
def ana(client):
    client.force_login(member("ana", "vision"))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_profile_is_refused_with_a_message_naming_the_problem(client, ana, case):
    data, message = CASES[case]
    response = post(client, data)
    assert response.status_code == 400
    errors = response.context["upload"].errors["file"]
    assert any(message in e for e in errors), errors
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not StageProfile.objects.exists()


def test_a_profile_over_the_size_limit_is_refused_before_it_is_read(client, ana, monkeypatch):
    monkeypatch.setattr("planner.plans.forms.MAX_UPLOAD_BYTES", 10_000)
    response = post(client, GOOD)
    assert response.status_code == 400
    assert f"profile is {len(GOOD.encode()):,} bytes, the limit is 10,000 bytes" in response.context["upload"].errors["file"]
    assert not StageProfile.objects.exists()


def test_a_profile_with_too_many_rows_is_refused(client, ana, monkeypatch):
    monkeypatch.setattr("planner.plans.profiles.MAX_UPLOAD_ROWS", 100)
    response = post(client, GOOD)
    assert "profile has 608 rows, the limit is 100" in response.context["upload"].errors["file"]
    assert not StageProfile.objects.exists()


def test_the_real_size_limit_is_the_planners_16_mib(client, ana):
    response = post(client, b"x" * (16 * 1024 * 1024 + 1))
    assert response.status_code == 400
    assert "the limit is 16,777,216 bytes" in response.context["upload"].errors["file"][0]
    assert not StageProfile.objects.exists()


def test_plan_parameters_that_do_not_fit_are_refused_before_queueing(client, ana):
    profile = profiles.store_upload(Project.objects.get(name="vision"), GOOD.encode(), name="gpt3").profile
    response = client.post(profile.get_absolute_url(), {
        "num_microbatches": 12, "unit_time_ms": 1e-6, "p_blocking_w": 83.64, "schedule": "1f1b", "mode": "default",
    })
    assert response.status_code == 400
    assert "use a larger unit time" in response.content.decode()
    assert not FrontierJob.objects.exists()


@pytest.mark.parametrize("field,value,message", [
    ("num_microbatches", "0", "greater than or equal to 1"),
    ("unit_time_ms", "-1", "greater than or equal to"),
    ("p_blocking_w", "-5", "greater than or equal to 0"),
    ("schedule", "zigzag", "Select a valid choice"),
])
def test_bad_plan_parameters_are_named(client, ana, field, value, message):
    profile = profiles.store_upload(Project.objects.get(name="vision"), GOOD.encode(), name="gpt3").profile
    data = {"num_microbatches": 12, "unit_time_ms": 1, "p_blocking_w": 83.64, "schedule": "1f1b", "mode": "default"}
    response = client.post(profile.get_absolute_url(), {**data, field: value})
    assert response.status_code == 400
    assert any(message in e for e in response.context["form"].errors[field])
    assert not FrontierJob.objects.exists()

"""`manage.py seed_demo` streams the demo through the real ingest path, once, and prints the login."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.http import HttpRequest

from dashboard.demo import seed as demo
from dashboard.projects.models import Membership
from dashboard.telemetry.models import BatchReceipt, Rejection, Run, RunGpu

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("quick_demo")]


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", "--quiet", stdout=out)
    return out.getvalue()


def test_seed_demo_streams_every_run_with_an_estimated_gpu_and_a_counter_reset_and_prints_a_working_login():
    output = seed()
    assert f"user {demo.DEMO_USER!r}, password {demo.DEMO_PASSWORD!r}" in output
    assert authenticate(HttpRequest(), username=demo.DEMO_USER, password=demo.DEMO_PASSWORD) is not None
    # The demo login manages the demo project's members (its members page), as its admin.
    assert Membership.objects.get(user__username=demo.DEMO_USER, project__name=demo.DEMO_PROJECT).role == "admin"
    assert set(Run.objects.values_list("name", flat=True)) == {d.name for d in demo.DEMO_RUNS}
    assert Run.objects.filter(status=Run.Status.FINISHED, simulated=True).count() == len(demo.DEMO_RUNS)
    main = Run.objects.get(name=demo.DEMO_RUNS[0].name)
    assert RunGpu.objects.filter(run=main).count() == demo.DEMO_RUNS[0].nodes * demo.DEMO_RUNS[0].gpus
    assert not Rejection.objects.exists()
    # One GPU without an energy counter, and a counter reset that never shows up as negative energy.
    assert RunGpu.objects.filter(run__name="resnet50-sweep-3", estimated=True).count() == 1
    assert not RunGpu.objects.filter(energy_j__lt=0).exists()


def test_seed_demo_is_idempotent():
    seed()
    receipts = BatchReceipt.objects.count()
    assert "already seeded" in seed()
    assert BatchReceipt.objects.count() == receipts



def test_seeding_again_keeps_a_signed_in_browser_signed_in_and_a_changed_password(client, monkeypatch):
    monkeypatch.setattr(demo, "is_seeded", lambda: True)  # the runs are not what this is about
    seed()
    assert client.login(request=HttpRequest(), username=demo.DEMO_USER, password=demo.DEMO_PASSWORD)
    assert client.get("/runs/").status_code == 200
    seed()  # `make run` again
    assert client.get("/runs/").status_code == 200  # not redirected to the login page
    user = authenticate(HttpRequest(), username=demo.DEMO_USER, password=demo.DEMO_PASSWORD)
    user.set_password("mine now")
    user.save()
    output = seed()
    assert authenticate(HttpRequest(), username=demo.DEMO_USER, password="mine now") is not None
    assert "with the password you gave it" in output and demo.DEMO_PASSWORD not in output

"""The runs list sorts by energy, duration, GPUs and mean power, and filters by project, tag and status."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from dashboard.telemetry import ingest
from dashboard.telemetry.models import Run, RunTag
from tests.factories import member, register, simple_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(client):
    a, b = register("node-a", "vision"), register("node-b", "speech")
    ingest.ingest_batch(simple_batch(a, run="small", step_mj=1_000))
    ingest.ingest_batch(simple_batch(a, run="big", step_mj=90_000, samples=30, stream="s2"))
    ingest.ingest_batch(simple_batch(b, run="medium", step_mj=20_000))
    RunTag.objects.create(run=Run.objects.get(name="big"), name="nightly")
    Run.objects.filter(name="small").update(status=Run.Status.FINISHED)
    client.force_login(member("ana", "vision", "speech"))


def names(client, **params) -> list[str]:
    html = client.get(reverse("runs"), params).content.decode()
    return re.findall(r'<td><a href="/runs/\d+/">([\w-]+)</a>', html)


def test_sort_by_energy_descending_and_ascending(client, runs):
    assert names(client, sort="-energy") == ["big", "medium", "small"]
    assert names(client, sort="energy") == ["small", "medium", "big"]


def test_sort_by_duration_and_mean_power(client, runs):
    assert names(client, sort="-duration")[0] == "big"
    assert names(client, sort="-power") == ["big", "medium", "small"]


def test_filter_by_project_tag_and_status(client, runs):
    assert names(client, project="speech") == ["medium"]
    assert names(client, tag="nightly") == ["big"]
    assert names(client, status="finished") == ["small"]


def test_unknown_sort_key_falls_back_to_newest_first(client, runs):
    assert sorted(names(client, sort="drop table")) == ["big", "medium", "small"]

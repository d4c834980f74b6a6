"""Refused messages are visible: the nodes page lists each node's refusals of the last hour with their
reason code, latest reason and count; the runs list warns when any of the user's nodes had some."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard.runs.nodes_page import nodes_page, refused_nodes
from dashboard.telemetry import ingest
from dashboard.telemetry.models import Node, Rejection
from dashboard.telemetry.nodes import create_enrolment_token, revoke_enrolment_token
from tests.factories import RegisteredNode, member, register, simple_batch

pytestmark = pytest.mark.django_db


def wrong_token(name: str, project: str = "vision") -> RegisteredNode:
    return RegisteredNode(name, "a-mistyped-token", project)


@pytest.fixture
def ana():
    return member("ana", "vision")


@pytest.fixture
def world():
    """vision: gpu-01 streams and then gets a wrong token; gpu-02 only streams. speech: gpu-09 is refused."""
    ours, quiet, theirs = register("gpu-01", "vision"), register("gpu-02", "vision"), register("gpu-09", "speech")
    ingest.ingest_batch(simple_batch(ours))
    ingest.ingest_batch(simple_batch(quiet, run="other"))
    for seq in range(3):
        ingest.ingest_batch(simple_batch(wrong_token("gpu-01"), seq=seq))
    ingest.ingest_batch(simple_batch(ours, seq=0, start_mj=5_000_000))  # a replay
    ingest.ingest_batch(simple_batch(wrong_token("gpu-09", "speech")))
    ingest.ingest_batch(simple_batch(wrong_token("nobody-knows")))  # no such node: staff only
    return ours, quiet, theirs


def test_each_node_shows_its_refusals_of_the_last_hour_by_reason(world, ana):
    page = nodes_page(ana)
    [vision] = page.projects
    rows = {row.node.name: row for row in vision.nodes}
    assert set(rows) == {"gpu-01", "gpu-02"}
    refusals = {r.code: r for r in rows["gpu-01"].refusals}
    assert {code: r.count for code, r in refusals.items()} == {"unknown_key": 3, "replay": 1}
    assert "unknown key" in refusals["unknown_key"].latest_reason
    assert "replayed sequence number" in refusals["replay"].latest_reason
    assert rows["gpu-02"].refusals == [] and rows["gpu-01"].node.runs == 1
    assert page.unattributed == []  # not staff


def test_older_refusals_leave_the_page(world, ana):
    Rejection.objects.update(received_at=timezone.now() - timedelta(hours=2))
    assert all(not row.refusals for row in nodes_page(ana).projects[0].nodes)
    assert refused_nodes(ana) == 0


def test_staff_also_see_refusals_that_belong_to_no_node(world, ana):
    ana.is_staff = True
    ana.save()
    [unknown] = nodes_page(ana).unattributed
    assert (unknown.node_name, unknown.code, unknown.count) == ("nobody-knows", "unknown_key", 1)


def test_the_nodes_page_shows_codes_reasons_tokens_and_nothing_of_other_projects(client, world, ana):
    row, _, _ = create_enrolment_token("vision", "cluster-a")
    revoke_enrolment_token(row)
    client.force_login(ana)
    html = client.get(reverse("nodes")).content.decode()
    assert "gpu-01" in html and "3 × unknown token or node" in html and "(unknown_key)" in html
    assert "1 × replayed sequence number" in html
    assert "cluster-a" in html and row.key_id in html and "revoked" in html
    assert row.signing_key_hex not in html
    assert "gpu-09" not in html and "speech" not in html and "nobody-knows" not in html


def test_the_runs_list_warns_of_refused_nodes_and_links_to_the_nodes_page(client, world, ana):
    client.force_login(ana)
    html = client.get(reverse("runs")).content.decode()
    assert 'id="refused-banner"' in html and "1 node of your projects" in html
    assert f'href="{reverse("nodes")}"' in html
    client.force_login(member("bob", "elsewhere"))
    assert 'id="refused-banner"' not in client.get(reverse("runs")).content.decode()


def test_the_nodes_page_needs_a_login(client):
    response = client.get(reverse("nodes"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_an_implausible_reading_is_listed_but_does_not_say_data_is_not_stored(ana):
    """Its batch was stored (the interval counted 0 J): the nodes page lists it, the runs list's banner,
    which says a node's data is not being stored, does not count it."""
    glitching = register("gpu-03", "vision")
    ingest.ingest_batch(simple_batch(glitching))
    node = Node.objects.get(name=glitching.name)
    Rejection.objects.create(kind=Rejection.Kind.BATCH, reason_code=Rejection.Code.IMPLAUSIBLE, node=node,
                             node_name=node.name, reason="implausible energy reading (counted 0 J)")
    [row] = [r for r in nodes_page(ana).projects[0].nodes if r.node.name == "gpu-03"]
    assert [r.code for r in row.refusals] == ["implausible"]
    assert refused_nodes(ana) == 0

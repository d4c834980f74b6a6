"""Where a node's power came from: site assignment > agent --zone > agent --region > project default >
world average; the agent's flags travel in open_run and are checked on both sides."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from dashboard.projects.models import Project
from dashboard.telemetry import ingest
from dashboard.telemetry.models import Node, Rejection, Run, RunNode
from planner.carbon.accounting import store_run_carbon
from planner.carbon.models import FallbackStep, NodeSite, ProjectCarbon, RunNodeCarbon, Site
from tests.factories import T0_MS, member, register
from tests.planner.carbon.support import open_message, stream_hours
from wattwise_agent.backends.simulated import SimulatedBackend
from wattwise_agent.cli import main as agent_main
from wattwise_agent.clock import VirtualClock
from wattwise_agent.streamer import Streamer
from wattwise_agent.transport import MemoryTransport

pytestmark = pytest.mark.django_db


def placement(run_name: str) -> tuple[str, str, float, str]:
    stored = store_run_carbon(Run.objects.get(name=run_name))
    node = stored.nodes.get()
    return node.where, node.located_by, node.pue, node.zone


def test_an_agent_zone_is_used_with_the_project_default_pue():
    node = register("n1", "p")
    ProjectCarbon.objects.create(project=Project.objects.get(name="p"), default_pue=1.4)
    stream_hours(node, "r", [1.0], zone="SE-SE3", region="aws:eu-west-1")
    assert placement("r") == ("SE-SE3", "agent_zone", 1.4, "SE-SE3")


def test_an_agent_region_maps_to_its_grid_zone():
    node = register("n1", "p")
    stream_hours(node, "r", [1.0], region="aws:eu-north-1")
    assert placement("r") == ("aws:eu-north-1", "agent_region", 1.0, "SE-SE3")


def test_a_site_assignment_beats_the_agent_flags():
    node = register("n1", "p")
    site = Site.objects.create(project=Project.objects.get(name="p"), name="dc-1", where="FR", pue=1.2)
    NodeSite.objects.create(node=Node.objects.get(name="n1"), site=site)
    stream_hours(node, "r", [1.0], zone="DE")
    assert placement("r") == ("FR", "site", 1.2, "FR")


def test_the_project_default_is_used_when_nothing_else_is_known():
    node = register("n1", "p")
    ProjectCarbon.objects.create(project=Project.objects.get(name="p"), default_where="gcp:europe-west1")
    stream_hours(node, "r", [1.0])
    assert placement("r") == ("gcp:europe-west1", "project_default", 1.0, "BE")


def test_with_nothing_known_the_world_average_is_used_and_said():
    node = register("n1", "p")
    stream_hours(node, "r", [1.0])
    stored = store_run_carbon(Run.objects.get(name="r"))
    located = stored.nodes.get()
    assert located.located_by == RunNodeCarbon.LocatedBy.WORLD and "world average used" in located.located_note
    assert located.hours.get().step == FallbackStep.WORLD


def test_an_unknown_agent_region_is_skipped_with_a_note():
    node = register("n1", "p")
    ProjectCarbon.objects.create(project=Project.objects.get(name="p"), default_where="DE")
    stream_hours(node, "r", [1.0], region="aws:mars-central-1")
    stored = store_run_carbon(Run.objects.get(name="r"))
    located = stored.nodes.get()
    assert (located.where, located.located_by) == ("DE", RunNodeCarbon.LocatedBy.PROJECT_DEFAULT)
    assert "agent region 'aws:mars-central-1': unknown cloud region" in located.located_note


@pytest.mark.parametrize(("field", "value"), [("zone", "DE; DROP"), ("zone", 12), ("region", "mars:x"),
                                              ("region", "aws:" + "x" * 80)])
def test_open_run_refuses_a_malformed_zone_or_region_and_stores_nothing(field, value):
    node = register("n1", "p")
    outcome = ingest.open_run(open_message(node, "r", "s1", **{field: value}))
    assert outcome.status == "rejected" and field in outcome.detail
    assert not Run.objects.exists() and Rejection.objects.get().kind == Rejection.Kind.OPEN_RUN


def test_open_run_stores_the_agent_flags_on_its_session():
    node = register("n1", "p")
    assert ingest.open_run(open_message(node, "r", "s1", zone="US-MIDA-PJM", region="AWS:us-east-1")).status == "opened"
    assert RunNode.objects.values_list("zone", "region").get() == ("US-MIDA-PJM", "aws:us-east-1")


def test_the_streamer_sends_zone_and_region_in_open_run_only_when_given():
    def first_payload(**kwargs):
        transport = MemoryTransport()
        streamer = Streamer(SimulatedBackend(1, node="n"), transport, run="r", token="t", node="n",
                            clock=VirtualClock(T0_MS), **kwargs)
        streamer.open()
        return json.loads(transport.envelopes[0]["body"])

    assert "zone" not in first_payload() and "region" not in first_payload()
    payload = first_payload(zone="SE-SE3", region="gcp:europe-north1")
    assert (payload["zone"], payload["region"]) == ("SE-SE3", "gcp:europe-north1")
    with pytest.raises(ValueError, match=r"zone\b.*\bgrid zone id"):
        first_payload(zone="not a zone")


def test_the_agent_cli_refuses_a_malformed_region_before_streaming(capsys, monkeypatch):
    monkeypatch.setenv("WATTWISE_TOKEN", "t")
    code = agent_main(["stream", "--backend", "simulated", "--run", "r", "--broker", "redis://127.0.0.1:1/0",
                       "--region", "eu-north-1", "--fast", "--duration", "1s"])
    assert code == 2
    err = capsys.readouterr().err
    assert "region" in err and "cloud region such as aws:eu-north-1" in err and "eu-north-1" in err


def test_a_project_admin_assigns_nodes_to_sites_on_the_page(client):
    register("n1", "p")
    user = member("ana", "p")
    client.force_login(user)
    url = reverse("carbon:sites", args=[Project.objects.get(name="p").pk])
    add = {"action": "add_site", "site-name": "stockholm", "site-where": "aws:eu-north-1", "site-pue": "1.15"}
    assert client.post(url, add).status_code == 403  # members look; managers change
    user.user_permissions.add(Permission.objects.get(codename="change_site"))
    bad = client.post(url, {**add, "site-where": "atlantis", "site-pue": "0.9"}).content.decode()
    assert "is not a known zone, cloud region or country" in bad and "greater than or equal to 1.0" in bad
    assert client.post(url, add).status_code == 302
    site = Site.objects.get()
    node = Node.objects.get(name="n1")
    assert client.post(url, {"action": "assign", "assign-node": node.pk, "assign-site": site.pk}).status_code == 302
    assert NodeSite.objects.get(node=node).site == site
    other_project_site = Site.objects.create(project=Project.objects.create(name="q"), name="x", where="DE")
    html = client.post(url, {"action": "assign", "assign-node": node.pk, "assign-site": other_project_site.pk})
    assert "Select a valid choice" in html.content.decode()
    assert NodeSite.objects.get(node=node).site == site

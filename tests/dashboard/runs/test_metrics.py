"""Prometheus /metrics: per-GPU power and energy of running runs, ingest counters, scoped to the scraper."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from dashboard.projects.tokens import issue_token
from dashboard.telemetry import ingest
from dashboard.telemetry.models import Rejection, Run, RunGpu
from tests.factories import member, register, simple_batch
from wattwise_agent.wire import seal

pytestmark = pytest.mark.django_db


@pytest.fixture
def nodes():
    return register("node-a", "vision"), register("node-b", "speech")


@pytest.fixture
def runs(nodes):
    ours, theirs = nodes
    for seq in range(3):
        ingest.ingest_batch(simple_batch(ours, seq=seq, run="llama", uuid="GPU-1", stream="s1"))
        ingest.ingest_batch(simple_batch(ours, seq=seq, run="llama", uuid="GPU-2", stream="s2", index=1,
                                         step_mj=45_000))
    ingest.ingest_batch(simple_batch(ours, run="old", uuid="GPU-3", stream="s3", index=2))
    Run.objects.filter(name="old").update(status=Run.Status.FINISHED)
    ingest.ingest_batch(simple_batch(theirs, run="their-run", uuid="GPU-9"))


@pytest.fixture
def ana():
    return member("ana", "vision")


def scrape(client, user=None, **headers) -> dict[str, dict[tuple, float]]:
    """Scrape as ``user`` with a fresh Bearer token; return {sample name: {sorted labels: value}}."""
    if user is not None:
        headers.setdefault("Authorization", f"Bearer {issue_token(user)}")
    response = client.get(reverse("metrics"), headers=headers)
    assert response.status_code == 200, response.content
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def gpu_labels(run: str, uuid: str, index: int, project: str = "vision", node: str = "node-a") -> tuple:
    return tuple(sorted({"project": project, "run": run, "node": node, "gpu": str(index), "uuid": uuid}.items()))


def test_gpu_and_run_energy_match_the_stored_totals(client, runs, ana):
    metrics = scrape(client, ana)
    energy = metrics["wattwise_gpu_energy_joules_total"]
    for uuid, index in (("GPU-1", 0), ("GPU-2", 1)):
        stored = RunGpu.objects.get(run__name="llama", gpu__uuid=uuid).energy_j
        assert energy[gpu_labels("llama", uuid, index)] == pytest.approx(stored)
    run_total = sum(RunGpu.objects.filter(run__name="llama").values_list("energy_j", flat=True))
    assert metrics["wattwise_run_energy_joules_total"] == {
        (("project", "vision"), ("run", "llama")): pytest.approx(run_total)
    }
    # The project's total keeps finished runs.
    project_total = sum(RunGpu.objects.filter(run__project__name="vision").values_list("energy_j", flat=True))
    assert metrics["wattwise_project_energy_joules_total"] == {(("project", "vision"),): pytest.approx(project_total)}
    assert metrics["wattwise_active_runs"] == {(("project", "vision"),): 1}


def test_power_is_the_mean_of_each_gpus_latest_window(client, nodes, ana):
    ours, _ = nodes
    ingest.ingest_batch(simple_batch(ours, seq=0, run="llama"))
    message = simple_batch(ours, seq=1, run="llama")
    payload = json.loads(message["body"])
    payload["gpus"][0]["power_mw"] = [200_000 + 10_000 * i for i in range(10)]  # mean 245 W
    ingest.ingest_batch(seal("batch", ours.name, payload, ours.token))
    assert scrape(client, ana)["wattwise_gpu_power_watts"] == {gpu_labels("llama", "GPU-1", 0): pytest.approx(245.0)}


def test_finished_runs_gpus_are_not_in_the_per_gpu_series(client, runs, ana):
    metrics = scrape(client, ana)
    for name in ("wattwise_gpu_power_watts", "wattwise_gpu_energy_joules_total", "wattwise_gpu_last_sample_age_seconds"):
        assert {dict(labels)["run"] for labels in metrics[name]} == {"llama"}
        assert len(metrics[name]) == 2


def test_last_sample_age_is_seconds_since_the_gpus_latest_reading(client, runs, ana):
    from django.utils import timezone

    before = timezone.now().timestamp()
    ages = scrape(client, ana)["wattwise_gpu_last_sample_age_seconds"]
    last_ms = RunGpu.objects.get(run__name="llama", gpu__uuid="GPU-1").last_ms
    assert ages[gpu_labels("llama", "GPU-1", 0)] == pytest.approx(before - last_ms / 1000, abs=30)


def test_another_projects_runs_and_nodes_are_absent(client, runs, ana):
    text = client.get(reverse("metrics"), headers={"Authorization": f"Bearer {issue_token(ana)}"}).content.decode()
    assert "speech" not in text and "their-run" not in text and "node-b" not in text and "GPU-9" not in text


def test_a_user_in_no_project_gets_valid_but_empty_metrics(client, runs):
    metrics = scrape(client, member("bob"))
    assert all(not values for values in metrics.values())


def test_ingest_counters_count_stored_batches_and_samples(client, runs, ana):
    metrics = scrape(client, ana)
    node = (("node", "node-a"), ("project", "vision"))
    assert metrics["wattwise_ingest_batches_total"] == {node: 7}
    assert metrics["wattwise_ingest_samples_total"] == {node: 70}
    assert node in metrics["wattwise_node_last_seen_timestamp_seconds"]


@pytest.fixture
def rejections(nodes):
    ours, theirs = nodes
    for node in (ours, theirs):
        guessed = seal("batch", node.name, json.loads(simple_batch(node)["body"]), "guessed-token")
        ingest.ingest_batch(guessed)  # a wrong token: counted for the node it claims to be, the only one so named
    stranger = {k: v for k, v in simple_batch(ours).items() if k != "key"}  # no key id: found by name
    stranger["node"] = "node-nobody"
    ingest.ingest_batch(stranger)
    assert Rejection.objects.count() == 3


def test_rejections_are_counted_for_the_users_nodes_only_by_reason(client, rejections, ana):
    counts = scrape(client, ana)["wattwise_ingest_rejections_total"]
    assert counts == {(("kind", "batch"), ("node", "node-a"), ("project", "vision"), ("reason", "unknown_key")): 1}


def test_staff_also_see_rejections_of_unknown_nodes_without_the_claimed_name(client, rejections, ana):
    ana.is_staff = True
    ana.save()
    counts = scrape(client, ana)["wattwise_ingest_rejections_total"]
    assert counts == {
        (("kind", "batch"), ("node", "node-a"), ("project", "vision"), ("reason", "unknown_key")): 1,
        (("kind", "batch"), ("node", ""), ("project", ""), ("reason", "unknown_key")): 1,
    }


# --- authentication ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer ww_not-a-real-token", "Bearer", "Basic YW5hOnB3"])
def test_without_a_valid_token_or_session_the_answer_is_401(client, runs, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get(reverse("metrics"), headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_token_is_refused_even_in_a_logged_in_browser(client, runs, ana):
    client.force_login(ana)
    response = client.get(reverse("metrics"), headers={"Authorization": "Bearer ww_wrong"})
    assert response.status_code == 401


def test_a_bearer_token_alone_is_enough(client, runs, ana):
    response = client.get(reverse("metrics"), headers={"Authorization": f"Bearer {issue_token(ana)}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")


def test_a_logged_in_session_can_scrape_too(client, runs, ana):
    client.force_login(ana)
    assert "wattwise_gpu_energy_joules_total" in scrape(client)


def test_a_token_of_a_deactivated_user_is_refused(client, runs, ana):
    token = issue_token(ana)
    ana.is_active = False
    ana.save()
    assert client.get(reverse("metrics"), headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_openmetrics_is_served_to_scrapers_that_ask_for_it(client, runs, ana):
    response = client.get(reverse("metrics"), headers={
        "Authorization": f"Bearer {issue_token(ana)}",
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    })
    assert response["Content-Type"].startswith("application/openmetrics-text")
    body = response.content.decode()
    assert body.endswith("# EOF\n")
    assert "# UNIT wattwise_gpu_power_watts watts" in body


# --- cost -----------------------------------------------------------------------------------------------


def test_a_scrape_costs_a_handful_of_queries_whatever_the_number_of_runs(client, nodes, ana,
                                                                          django_assert_max_num_queries):
    ours, _ = nodes
    for i in range(40):
        for index in range(2):
            ingest.ingest_batch(simple_batch(ours, run=f"run-{i}", uuid=f"GPU-{index}", index=index,
                                             stream=f"s{i}-{index}"))
    token = issue_token(ana)
    # Token lookup and its last-used stamp, then the four reads of the collector.
    with django_assert_max_num_queries(6):
        response = client.get(reverse("metrics"), headers={"Authorization": f"Bearer {token}"})
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert len(families["wattwise_gpu_power_watts"].samples) == 80
    assert families["wattwise_active_runs"].samples[0].value == 40

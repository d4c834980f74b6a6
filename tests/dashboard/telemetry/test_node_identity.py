"""A message's node comes from the token that signed it (named by the envelope's key id): a node's own
token, or its project's enrolment token, which registers nodes on first contact. Old agents (no key id)
are found by name, unambiguously even when two projects share it."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.projects.models import Project
from dashboard.telemetry import admission, ingest
from dashboard.telemetry.ingest_memo import IngestMemo
from dashboard.telemetry.models import EnrolmentToken, Node, Rejection, RunGpu, RunNode
from dashboard.telemetry.nodes import create_enrolment_token, register_node, revoke_enrolment_token
from tests.factories import T0_MS, RegisteredNode, batch_payload, gpu_entry, register, simple_batch
from wattwise_agent.wire import key_id, seal, signing_key

pytestmark = pytest.mark.django_db

Code = Rejection.Code


def enrolment(project: str = "vision", name: str = "") -> tuple[EnrolmentToken, str]:
    row, token, _ = create_enrolment_token(project, name)
    return row, token


def as_host(token: str, host: str, project: str = "vision") -> RegisteredNode:
    """What an agent given ``token`` sends as: its host name, signed with that token."""
    return RegisteredNode(host, token, project)


def only_rejection() -> Rejection:
    return Rejection.objects.get()


# --- per-node tokens ----------------------------------------------------------------------------------


def test_a_per_node_tokens_messages_belong_to_its_node_whatever_name_they_claim():
    node = register("gpu-01")
    renamed = simple_batch(RegisteredNode("gpu-01.cluster.example", node.token, "vision"))
    assert ingest.ingest_batch(renamed).status == "stored"
    stored = Node.objects.get()
    assert RunGpu.objects.get().gpu.node == stored and stored.name == "gpu-01"
    assert stored.reported_name == "gpu-01.cluster.example"  # shown on the nodes page
    assert ingest.ingest_batch(simple_batch(node, seq=1)).status == "stored"
    assert Node.objects.get().reported_name == ""  # the agent sends its registered name again


def test_authenticate_returns_the_tokens_node_and_raises_unauthenticated_for_what_it_cannot_trust():
    node = register("gpu-01")
    found, payload, digest = admission.authenticate(simple_batch(node), "batch")
    assert found == Node.objects.get() and payload["seq"] == 0 and len(digest) == 64
    forged = {**simple_batch(RegisteredNode("gpu-01", "guessed", "vision")), "key": key_id(node.token)}
    with pytest.raises(admission.Unauthenticated) as refused:
        admission.authenticate(forged, "batch")
    assert refused.value.code == Code.BAD_SIGNATURE and refused.value.node == found
    assert isinstance(refused.value, admission.Rejected)
    with pytest.raises(admission.Unauthenticated) as unknown:
        admission.authenticate(simple_batch(RegisteredNode("gpu-01", "guessed", "vision")), "batch")
    assert unknown.value.code == Code.UNKNOWN_KEY and "unknown key" in str(unknown.value)


def test_a_rotated_token_stops_the_old_one_at_once():
    node = register("gpu-01")
    _, new_token, _ = register_node("gpu-01", "vision", rotate=True)
    outcome = ingest.ingest_batch(simple_batch(node))
    assert outcome.status == "rejected" and "unknown key" in outcome.detail
    assert only_rejection().reason_code == Code.UNKNOWN_KEY and only_rejection().node == Node.objects.get()
    assert ingest.ingest_batch(simple_batch(as_host(new_token, "gpu-01"))).status == "stored"


# --- nodes registered before key ids, and agents that send none -------------------------------------------


def old_node(name: str, project: str) -> RegisteredNode:
    """A node registered before key ids: its signing key is stored, its key id is not."""
    node = register(name, project)
    Node.objects.filter(name=name, project__name=project).update(key_id="")
    return node


def without_key(message: dict) -> dict:
    return {k: v for k, v in message.items() if k != "key"}


def test_a_node_registered_before_key_ids_keeps_working_with_old_and_new_agents():
    node = old_node("gpu-01", "vision")
    assert ingest.ingest_batch(without_key(simple_batch(node, seq=0))).status == "stored"  # old agent, spool
    assert ingest.ingest_batch(simple_batch(node, seq=1)).status == "stored"  # new agent: key id unknown here
    assert RunGpu.objects.get().samples == 20


def test_two_projects_may_have_a_node_of_the_same_name_and_old_agents_still_reach_the_right_one():
    ours, theirs = old_node("gpu-01", "vision"), old_node("gpu-01", "speech")
    assert ingest.ingest_batch(without_key(simple_batch(ours))).status == "stored"
    assert ingest.ingest_batch(without_key(simple_batch(theirs, run="asr"))).status == "stored"
    runs = {rg.run.name: rg.run.project.name for rg in RunGpu.objects.select_related("run__project")}
    assert runs == {"run-1": "vision", "asr": "speech"}
    forged = without_key(simple_batch(RegisteredNode("gpu-01", "guessed", "vision")))
    outcome = ingest.ingest_batch(forged)
    assert outcome.status == "rejected" and "bad signature" in outcome.detail
    assert only_rejection().node is None  # two nodes of that name: whose it was is not known


def test_names_are_unique_within_a_project_only():
    register("gpu-01", "vision")
    register("gpu-01", "speech")
    with pytest.raises(CommandError, match="already exists in project 'vision'"):
        call_command("create_node", "gpu-01", "--project", "vision", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="not in project 'audio' but in 'speech', 'vision'"):
        call_command("create_node", "gpu-01", "--project", "audio", "--rotate", stdout=io.StringIO(),
                     stderr=io.StringIO())
    assert Node.objects.filter(name="gpu-01").count() == 2


# --- enrolment tokens ---------------------------------------------------------------------------------


def test_a_node_with_the_enrolment_token_registers_itself_on_first_contact():
    row, token = enrolment("vision", "cluster-a")
    assert ingest.ingest_batch(simple_batch(as_host(token, "gpu-07"))).status == "stored"
    assert ingest.ingest_batch(simple_batch(as_host(token, "gpu-08"))).status == "stored"
    assert ingest.ingest_batch(simple_batch(as_host(token, "gpu-07"), seq=1)).status == "stored"
    nodes = Node.objects.order_by("name")
    assert [(n.name, n.project.name, n.enrolled_by, n.has_own_token) for n in nodes] == [
        ("gpu-07", "vision", row, False), ("gpu-08", "vision", row, False)
    ]
    assert RunGpu.objects.filter(gpu__node__name="gpu-07").get().samples == 20
    row.refresh_from_db()
    assert row.last_used_at is not None and list(row.nodes.order_by("name")) == list(nodes)


def test_an_enrolment_tokens_use_is_written_at_most_once_a_minute():
    row, token = enrolment()
    host = as_host(token, "gpu-07")
    ingest.ingest_batch(simple_batch(host))
    with CaptureQueriesContext(connection) as second:
        ingest.ingest_batch(simple_batch(host, seq=1))
    table = EnrolmentToken._meta.db_table
    assert not [q for q in second.captured_queries if q["sql"].startswith(f'UPDATE "{table}"')]
    EnrolmentToken.objects.update(last_used_at=timezone.now() - timedelta(minutes=2))
    ingest.ingest_batch(simple_batch(host, seq=2))
    row.refresh_from_db()
    assert row.last_used_at > timezone.now() - timedelta(minutes=1)


def test_enrolment_tokens_of_two_projects_give_each_its_own_node_of_the_same_name():
    _, vision = enrolment("vision")
    _, speech = enrolment("speech")
    ingest.ingest_batch(simple_batch(as_host(vision, "gpu-01")))
    ingest.ingest_batch(simple_batch(as_host(speech, "gpu-01")))
    assert sorted(Node.objects.values_list("project__name", "name")) == [("speech", "gpu-01"), ("vision", "gpu-01")]


def test_a_revoked_enrolment_token_stops_every_node_enrolled_with_it():
    row, token = enrolment("vision", "cluster-a")
    ingest.ingest_batch(simple_batch(as_host(token, "gpu-07")))
    ingest.ingest_batch(simple_batch(as_host(token, "gpu-08")))
    assert revoke_enrolment_token(row) == 2
    for host in ("gpu-07", "gpu-08"):
        outcome = ingest.ingest_batch(simple_batch(as_host(token, host), seq=1))
        assert outcome.status == "rejected" and "enrolment token 'cluster-a' of project 'vision' was revoked" in outcome.detail
    assert sorted(Rejection.objects.values_list("reason_code", "node__name")) == [
        (Code.REVOKED, "gpu-07"), (Code.REVOKED, "gpu-08")
    ]
    assert RunGpu.objects.get(gpu__node__name="gpu-07").samples == 10  # what came before stays


def test_a_worker_notices_a_revocation_when_what_it_remembers_expires():
    row, token = enrolment()
    memo = IngestMemo()
    host = as_host(token, "gpu-07")
    assert ingest.ingest_batch(simple_batch(host), memo).status == "stored"
    revoke_enrolment_token(row)
    assert ingest.ingest_batch(simple_batch(host, seq=1), memo).status == "stored"  # remembered, for seconds
    memo.keys = {key: (found, 0.0) for key, (found, _) in memo.keys.items()}  # ... which have now passed
    assert ingest.ingest_batch(simple_batch(host, seq=2), memo).status == "rejected"
    assert only_rejection().reason_code == Code.REVOKED


def test_an_enrolment_token_cannot_sign_for_a_node_with_a_token_of_its_own():
    register("gpu-01", "vision")
    _, token = enrolment("vision")
    outcome = ingest.ingest_batch(simple_batch(as_host(token, "gpu-01")))
    assert outcome.status == "rejected" and "has a token of its own" in outcome.detail
    assert only_rejection().reason_code == Code.BAD_SIGNATURE and not RunGpu.objects.exists()


def test_an_enrolled_node_given_its_own_token_leaves_the_enrolment_token_behind():
    _, token = enrolment("vision")
    ingest.ingest_batch(simple_batch(as_host(token, "gpu-07")))
    _, own, _ = register_node("gpu-07", "vision", rotate=True)
    assert ingest.ingest_batch(simple_batch(as_host(own, "gpu-07"), seq=1)).status == "stored"
    assert ingest.ingest_batch(simple_batch(as_host(token, "gpu-07"), seq=2)).status == "rejected"
    assert Node.objects.get().key_id == key_id(own)


def test_an_enrolled_host_name_must_be_a_valid_node_name():
    _, token = enrolment()
    outcome = ingest.ingest_batch(simple_batch(as_host(token, "gpu 07")))
    assert outcome.status == "rejected" and "invalid node name" in outcome.detail
    assert not Node.objects.exists()


def test_an_enrolled_nodes_run_session_records_the_host_it_named():
    _, token = enrolment()
    host = as_host(token, "gpu-07")
    opened = seal("open_run", host.name, {"run": "run-1", "stream": "s1", "started_ms": T0_MS, "host": "gpu-07"},
                  token)
    assert ingest.open_run(opened).status == "opened"
    assert RunNode.objects.get().node.name == "gpu-07"


def test_create_enrolment_token_prints_the_token_once_and_stores_only_its_keys():
    out, err = io.StringIO(), io.StringIO()
    call_command("create_enrolment_token", "vision", "--name", "cluster-a", stdout=out, stderr=err)
    token = out.getvalue().strip().splitlines()[-1]
    row = EnrolmentToken.objects.get()
    assert (row.project, row.name) == (Project.objects.get(name="vision"), "cluster-a")
    assert (row.key_id, row.signing_key_hex) == (key_id(token), signing_key(token).hex())
    assert "cluster-a" in err.getvalue() and "WATTWISE_TOKEN" in err.getvalue()
    with pytest.raises(CommandError, match="already has an enrolment token named 'cluster-a'"):
        call_command("create_enrolment_token", "vision", "--name", "cluster-a", stdout=io.StringIO(),
                     stderr=io.StringIO())


# --- reason codes ---------------------------------------------------------------------------------------


def test_every_refusal_is_recorded_with_its_reason_code():
    node = register("gpu-01")
    _, enrol = enrolment("vision")
    assert ingest.ingest_batch(simple_batch(node, seq=0)).status == "stored"
    body = json.loads(simple_batch(node)["body"])
    cases = {
        Code.UNKNOWN_KEY: simple_batch(RegisteredNode("gpu-01", "guessed", "vision")),
        Code.BAD_SIGNATURE: {**simple_batch(node), "body": simple_batch(node)["body"].replace("run-1", "run-2")},
        Code.MALFORMED: seal("batch", node.name, {**body, "seq": -1}, node.token, check=False),
        Code.TOO_LARGE: {**simple_batch(node), "body": " " * (4 * 1024 * 1024 + 1)},
        Code.REPLAY: simple_batch(node, seq=0, start_mj=5_000_000),
        Code.CLOCK: seal("batch", node.name, {**body, "window_end_ms": 4_102_444_800_000}, node.token, check=False),
        # The previous window ended at T0 + 900 ms; this one says it continues from a reading at T0 + 950 ms.
        Code.CONTINUITY: seal("batch", node.name, batch_payload(
            [gpu_entry("GPU-1", [T0_MS + 1000, T0_MS + 1100], [2_000_000, 2_030_000], prev=(T0_MS + 950, 1_990_000))],
            seq=1), node.token),
    }
    for code, message in cases.items():
        before = Rejection.objects.count()
        assert ingest.ingest_batch(message).status == "rejected", code
        assert Rejection.objects.order_by("-pk").first().reason_code == code, code
        assert Rejection.objects.count() == before + 1
    # An impossible counter step is recorded too, with the batch it came in stored.
    jump = seal("batch", node.name, batch_payload(
        [gpu_entry("GPU-1", [T0_MS + 1000, T0_MS + 1100], [1_300_000, 10**15], prev=(T0_MS + 900, 1_270_000))],
        seq=1), node.token)
    assert ingest.ingest_batch(jump).status == "stored"
    assert Rejection.objects.order_by("-pk").first().reason_code == Code.IMPLAUSIBLE
    revoke_enrolment_token(EnrolmentToken.objects.get())
    ingest.ingest_batch(simple_batch(as_host(enrol, "gpu-09")))
    assert Rejection.objects.order_by("-pk").first().reason_code == Code.REVOKED
    assert set(Rejection.objects.values_list("reason_code", flat=True)) == set(Code.values) - {Code.PROFILE}


def test_a_rejection_names_the_key_it_claimed_and_the_node_when_known():
    node = register("gpu-01")
    ingest.ingest_batch(simple_batch(RegisteredNode("gpu-01", "guessed", "vision")))
    rejection = only_rejection()
    assert (rejection.key_id, rejection.node_name) == (key_id("guessed"), "gpu-01")
    assert rejection.node == Node.objects.get()  # the only node of the name it claimed: shown on its page
    assert node.token not in rejection.reason


def test_the_admin_lists_enrolment_tokens_without_their_secret_and_revokes_them(admin_client):
    row, token = enrolment("vision", "cluster-a")
    ingest.ingest_batch(simple_batch(as_host(token, "gpu-07")))
    listing = admin_client.get("/admin/telemetry/enrolmenttoken/").content.decode()
    assert "cluster-a" in listing and row.key_id in listing
    assert token not in listing and row.signing_key_hex not in listing
    assert row.signing_key_hex not in admin_client.get(f"/admin/telemetry/enrolmenttoken/{row.pk}/change/").content.decode()
    response = admin_client.post("/admin/telemetry/enrolmenttoken/", {"action": "revoke", "_selected_action": [row.pk]},
                                 follow=True)
    assert "1 node(s) enrolled with them are refused" in response.content.decode()
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert ingest.ingest_batch(simple_batch(as_host(token, "gpu-07"), seq=1)).status == "rejected"

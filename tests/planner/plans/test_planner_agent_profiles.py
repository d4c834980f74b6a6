"""Agents send recorded stage profiles as signed ``stage_profile`` messages: stored in the node's project
exactly once; anything bad is refused with the reason recorded and nothing stored."""

from __future__ import annotations

import io
import json

import pytest

from dashboard.telemetry import ingest
from dashboard.telemetry.models import Rejection, Run
from planner.plans import tasks
from planner.plans.models import StageProfile
from planner.plans.profiles import SAMPLE_FILE, SAMPLES_DIR, receive_stage_profile
from tests.factories import T0_MS, envelope, register, simple_batch
from wattwise_agent.wire import TASK_STAGE_PROFILE, key_id, seal

pytestmark = pytest.mark.django_db

GPT3_CSV = (SAMPLES_DIR / SAMPLE_FILE).read_text()


def payload(**changes) -> dict:
    body = {"run": "gpt3-pretrain", "name": "gpt3 8-stage", "csv": GPT3_CSV, "gpu_name": "NVIDIA A100-SXM4-80GB",
            "p_blocking_w": 83.6, "recorded_ms": T0_MS}
    body.update(changes)
    return body


def rejected_with(outcome: ingest.Outcome, words: str) -> None:
    assert outcome.status == "rejected", outcome
    assert words in outcome.detail
    assert Rejection.objects.filter(kind=Rejection.Kind.STAGE_PROFILE, reason__contains=words).count() == 1
    assert not StageProfile.objects.exists()


def test_a_recorded_profile_is_stored_in_the_nodes_project_and_linked_to_its_run():
    node = register("gpu-node-01", "vision")
    ingest.ingest_batch(simple_batch(node, run="gpt3-pretrain"))
    result = tasks.stage_profile.apply(args=[envelope(node, payload(), kind="stage_profile")]).get()
    assert result["status"] == "stored"
    profile = StageProfile.objects.get()
    assert (profile.project.name, profile.source, profile.node.name) == ("vision", "agent", "gpu-node-01")
    assert profile.run == Run.objects.get(name="gpt3-pretrain") and profile.run_name == "gpt3-pretrain"
    assert (profile.name, profile.gpu_name, profile.p_blocking_w, profile.num_stages) == ("gpt3 8-stage", "NVIDIA A100-SXM4-80GB", 83.6, 8)
    assert profile.recorded_at.timestamp() * 1000 == T0_MS
    assert profile.csv_text == GPT3_CSV and len(profile.body_sha256) == 64


def test_the_task_has_the_wire_formats_name():
    assert tasks.stage_profile.name == TASK_STAGE_PROFILE == "wattwise.stage_profile"


def test_a_message_delivered_twice_is_stored_once():
    node = register("gpu-node-01", "vision")
    message = envelope(node, payload(run=None), kind="stage_profile")
    assert receive_stage_profile(message).status == "stored"
    second = receive_stage_profile(message)
    assert second.status == "duplicate" and "already stored as 'gpt3 8-stage'" in second.detail
    assert StageProfile.objects.count() == 1 and not Rejection.objects.exists()
    assert StageProfile.objects.get().run is None


def test_a_run_not_seen_yet_is_kept_by_name():
    node = register("gpu-node-01", "vision")
    assert receive_stage_profile(envelope(node, payload(run="later-run"), kind="stage_profile")).status == "stored"
    profile = StageProfile.objects.get()
    assert profile.run is None and profile.run_name == "later-run"


def test_a_profile_from_an_unknown_node_is_rejected():
    node = register("gpu-node-01", "vision")
    message = envelope(node, payload(), kind="stage_profile")
    del message["key"]  # as an agent from before key ids sends it: found by name
    message["node"] = "gpu-node-99"
    rejected_with(receive_stage_profile(message), "unknown node 'gpu-node-99'")


def test_a_forged_profile_is_rejected():
    node = register("gpu-node-01", "vision")
    forged = {**seal("stage_profile", node.name, payload(), "guessed-token"), "key": key_id(node.token)}
    rejected_with(receive_stage_profile(forged), "bad signature")


def test_a_batch_message_cannot_be_passed_off_as_a_profile():
    node = register("gpu-node-01", "vision")
    rejected_with(receive_stage_profile(simple_batch(node)), "expected a 'stage_profile' message, got 'batch'")


def test_a_tampered_profile_is_rejected():
    node = register("gpu-node-01", "vision")
    message = envelope(node, payload(), kind="stage_profile")
    message["body"] = message["body"].replace("gpt3 8-stage", "gpt3 9-stage")
    rejected_with(receive_stage_profile(message), "bad signature")


@pytest.mark.parametrize("changes,words", [
    ({"csv": GPT3_CSV.replace("0,forward,1395,0.0501853656768798,23.81079199999944", "0,forward,1395,-0.05,23.8")},
     "profile line 4, column 'time': time must be positive, got -0.05"),
    ({"csv": "\n".join(line for line in GPT3_CSV.splitlines() if not line.startswith("3,"))},
     "profile stage 3: stage missing"),
    ({"csv": "stage,instruction\n0,forward\n"}, "column 'frequency': missing column"),
    ({"csv": 42}, "csv: expected the profile as CSV text"),
    ({"name": ""}, "name: expected a non-empty string"),
    ({"p_blocking_w": -3}, "p_blocking_w: expected a positive power in W below 10,000 W, or null, got -3"),
    ({"p_blocking_w": "lots"}, "p_blocking_w: expected a positive power in W below 10,000 W, or null, got 'lots'"),
    ({"gpu_name": "x" * 201}, "gpu_name: expected a non-empty string of at most 200 characters, or null"),
    ({"recorded_ms": "yesterday"}, "recorded_ms: expected a Unix time in milliseconds"),
    ({"recorded_ms": T0_MS * 10}, "recorded_ms lies in the future"),
    ({"csv": GPT3_CSV + "\x00"}, "csv: contains a NUL character"),  # no text column holds one
    ({"name": "profile\x00"}, "name: contains a NUL character"),
])
def test_a_bad_profile_message_is_rejected_naming_the_problem(changes, words):
    node = register("gpu-node-01", "vision")
    rejected_with(receive_stage_profile(envelope(node, payload(**changes), kind="stage_profile")), words)


def test_a_message_that_is_not_json_is_rejected():
    node = register("gpu-node-01", "vision")
    message = envelope(node, payload(), kind="stage_profile")
    from wattwise_agent.wire import _mac

    message["body"] = json.dumps(payload())[:-1]
    message["sig"] = _mac(node.key, "stage_profile", node.name, message["body"])
    rejected_with(receive_stage_profile(message), "body is not valid JSON")


def test_an_agents_profile_is_listed_on_the_planner_page_of_its_project(client):
    from tests.factories import member

    node = register("gpu-node-01", "vision")
    receive_stage_profile(envelope(node, payload(), kind="stage_profile"))
    client.force_login(member("ana", "vision"))
    html = client.get("/planner/").content.decode()
    assert "gpt3 8-stage" in html and "recorded by an agent" in html and "gpu-node-01" in html
    client.force_login(member("bob", "speech"))
    assert "gpt3 8-stage" not in client.get("/planner/").content.decode()


def test_a_payload_built_by_the_agents_uploader_is_stored():
    from wattwise_agent.profile_upload import ProfileUpload

    node = register("gpu-node-01", "vision")
    body, _ = ProfileUpload("from the agent", GPT3_CSV, "NVIDIA A100-SXM4-80GB", run="gpt3-pretrain",
                            p_blocking_w=83.6, recorded_ms=T0_MS).payload()
    assert receive_stage_profile(envelope(node, body, kind="stage_profile")).status == "stored"
    assert StageProfile.objects.get().name == "from the agent"


@pytest.mark.parametrize(("changes", "code"), [
    ({"csv": "stage,instruction\n0,forward\n"}, Rejection.Code.PROFILE),
    ({"recorded_ms": T0_MS * 10}, Rejection.Code.CLOCK),
    ({"name": ""}, Rejection.Code.MALFORMED),
])
def test_a_refused_profile_is_recorded_with_its_reason_code_and_node(changes, code):
    node = register("gpu-node-01", "vision")
    receive_stage_profile(envelope(node, payload(**changes), kind="stage_profile"))
    rejection = Rejection.objects.get()
    assert (rejection.reason_code, rejection.node.name) == (code, "gpu-node-01")


def test_a_profile_kept_as_a_dead_letter_is_stored_when_replayed():
    """A worker that could not store a profile keeps it (dashboard.telemetry.delivery); the planner's app says
    what receives it, so the replay command stores it like the task would have."""
    from django.core.management import call_command

    from dashboard.telemetry.models import DeadLetter

    node = register("gpu-node-01", "vision")
    DeadLetter.objects.create(task=TASK_STAGE_PROFILE, node_name=node.name, error="OperationalError: test",
                              envelope_json=json.dumps(envelope(node, payload(), kind="stage_profile")))
    call_command("replay_dead_letters", stdout=io.StringIO(), stderr=io.StringIO())
    assert StageProfile.objects.get().name == "gpt3 8-stage"
    assert DeadLetter.objects.get().replay_outcome.startswith("stored")

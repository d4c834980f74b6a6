"""Bad messages are refused with a clear reason, recorded, and write nothing else."""

from __future__ import annotations

import json

import pytest

from dashboard.telemetry import ingest
from dashboard.telemetry.models import BatchReceipt, Rejection, Run, RunGpu, SampleWindow
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, register, simple_batch
from wattwise_agent.wire import MAX_BODY_BYTES, WireError, _mac, key_id, seal

pytestmark = pytest.mark.django_db


def nothing_stored() -> bool:
    return not (Run.objects.exists() or RunGpu.objects.exists() or SampleWindow.objects.exists()
                or BatchReceipt.objects.exists())


def rejected_with(outcome: ingest.Outcome, words: str) -> None:
    assert outcome.status == "rejected"
    assert words in outcome.detail
    assert Rejection.objects.filter(reason__contains=words).count() == 1
    assert nothing_stored()


def test_batch_from_unknown_node_is_rejected():
    stranger = register("node-a")
    message = simple_batch(stranger)
    del message["key"]  # as an agent from before key ids sends it: found by name
    message["node"] = "node-nobody"
    rejected_with(ingest.ingest_batch(message), "unknown node 'node-nobody'")


def test_batch_signed_with_a_token_nobody_issued_is_rejected():
    node = register("node-a")
    guessed = seal("batch", node.name, json.loads(simple_batch(node)["body"]), "guessed-token")
    rejected_with(ingest.ingest_batch(guessed), f"unknown key {key_id('guessed-token')}")


def test_forged_batch_with_wrong_key_is_rejected():
    node = register("node-a")
    forged = seal("batch", node.name, json.loads(simple_batch(node)["body"]), "guessed-token")
    forged["key"] = key_id(node.token)  # claims the node's key id, signed with another token
    rejected_with(ingest.ingest_batch(forged), "bad signature")


def test_tampered_body_is_rejected():
    node = register("node-a")
    message = simple_batch(node)
    message["body"] = message["body"].replace('"run-1"', '"run-2"')
    rejected_with(ingest.ingest_batch(message), "bad signature")


def test_batch_signed_for_another_project_node_cannot_be_replayed_as_this_node():
    ours, theirs = register("node-a", "vision"), register("node-b", "speech")
    message = simple_batch(theirs)
    message["node"] = ours.name
    rejected_with(ingest.ingest_batch(message), "bad signature")


def test_replayed_sequence_number_with_different_content_is_rejected():
    node = register("node-a")
    assert ingest.ingest_batch(simple_batch(node, seq=0)).status == "stored"
    replay = simple_batch(node, seq=0, start_mj=5_000_000)
    outcome = ingest.ingest_batch(replay)
    assert outcome.status == "rejected" and "replayed sequence number" in outcome.detail
    assert SampleWindow.objects.count() == 1
    assert RunGpu.objects.get().energy_j == pytest.approx(9 * 30.0)


def test_malformed_body_is_rejected_naming_each_missing_field():
    node = register("node-a")
    message = envelope(node, {"run": "r"})
    rejected_with(ingest.ingest_batch(message), "stream: missing; expected a non-empty string of at most 64 characters; "
                                                "seq: missing; expected a non-negative integer below 2**63")


@pytest.mark.parametrize(("kind", "payload", "words"), [
    ("open_run", {"run": "r", "stream": "s", "started_ms": T0_MS, "tags": ["ok", ""]},
     "tags[1]: expected a non-empty string of at most 64 characters, got ''"),
    ("open_run", {"run": "r", "stream": "s", "started_ms": -1}, "started_ms: expected a Unix time in milliseconds"),
    ("close_run", {"run": "r", "stream": "s", "ended_ms": T0_MS, "last_seq": "7"},
     "last_seq: expected a non-negative integer below 2**63, or null, got '7'"),
    ("batch", {**batch_payload([gpu_entry("GPU-1", [T0_MS], [1])]), "events": [{"t_ms": T0_MS, "kind": "x", "a": [1]}]},
     "events[0].a: expected a string of at most 200 characters or a finite number"),
])
def test_the_agent_refuses_what_the_app_rejects_with_the_same_reason(kind, payload, words):
    node = register("node-a")
    with pytest.raises(WireError) as refused_by_the_agent:
        seal(kind, node.name, payload, node.token)
    handle = {"open_run": ingest.open_run, "close_run": ingest.close_run, "batch": ingest.ingest_batch}[kind]
    outcome = handle(envelope(node, payload, kind=kind))
    rejected_with(outcome, words)
    assert outcome.detail == str(refused_by_the_agent.value)


def test_message_that_is_not_an_envelope_is_rejected():
    outcome = ingest.ingest_batch(["not", "an", "envelope"])
    assert outcome.status == "rejected" and "not an object" in outcome.detail
    assert nothing_stored()


def test_oversized_batch_is_rejected_before_parsing():
    node = register("node-a")
    message = simple_batch(node)
    message["body"] = " " * (MAX_BODY_BYTES + 1)
    rejected_with(ingest.ingest_batch(message), "too large")


def test_nan_in_a_column_is_rejected():
    node = register("node-a")
    message = simple_batch(node)
    # JSON has no NaN, but a careless sender's encoder may write one: sign that body as sent.
    message["body"] = message["body"].replace('"power_mw":[300000', '"power_mw":[NaN', 1)
    message["sig"] = _mac(node.key, "batch", node.name, message["body"])
    rejected_with(ingest.ingest_batch(message), "NaN is not a valid number")


def test_time_going_backwards_within_a_batch_is_rejected():
    node = register("node-a")
    gpu = gpu_entry("GPU-1", [T0_MS, T0_MS + 200, T0_MS + 100], [1, 2, 3])
    rejected_with(ingest.ingest_batch(envelope(node, batch_payload([gpu]))), "time went backwards")


def test_batch_that_does_not_continue_from_the_previous_window_is_rejected():
    node = register("node-a")
    assert ingest.ingest_batch(simple_batch(node, seq=0)).status == "stored"
    gpu = gpu_entry("GPU-1", [T0_MS + 1000, T0_MS + 1100], [9, 10], prev=(T0_MS + 5000, 8))
    outcome = ingest.ingest_batch(envelope(node, batch_payload([gpu], seq=1)))
    assert outcome.status == "rejected" and "time went backwards" in outcome.detail
    assert SampleWindow.objects.count() == 1


def test_samples_from_the_future_are_rejected():
    node = register("node-a")
    future = 4_102_444_800_000  # 2100-01-01
    gpu = gpu_entry("GPU-1", [future, future + 100], [1, 2])
    rejected_with(ingest.ingest_batch(envelope(node, batch_payload([gpu]))), "future")


def test_wrong_units_out_of_range_are_rejected():
    node = register("node-a")
    gpu = gpu_entry("GPU-1", [T0_MS, T0_MS + 100], [1, 2])
    gpu["util_pct"] = [50.0, 4500.0]
    rejected_with(ingest.ingest_batch(envelope(node, batch_payload([gpu]))), "wrong units")


def test_fractional_counter_values_are_rejected():
    node = register("node-a")
    gpu = gpu_entry("GPU-1", [T0_MS, T0_MS + 100], [1, 2])
    gpu["energy_mj"] = [1.5, 2.5]
    rejected_with(ingest.ingest_batch(envelope(node, batch_payload([gpu]))), "whole numbers")


def test_a_bad_gpu_among_good_ones_rejects_the_whole_batch():
    node = register("node-a")
    good = gpu_entry("GPU-1", [T0_MS, T0_MS + 100], [1, 2])
    bad = gpu_entry("GPU-2", [T0_MS, T0_MS + 100], [1, 2], index=1)
    bad["temp_c"] = [20]
    outcome = ingest.ingest_batch(envelope(node, batch_payload([good, bad])))
    assert outcome.status == "rejected" and "gpus[1].temp_c" in outcome.detail
    assert nothing_stored()


def test_rejection_records_never_contain_the_token():
    node = register("node-a")
    message = simple_batch(node)
    message["node"] = "node-nobody"
    ingest.ingest_batch(message)
    assert node.token not in Rejection.objects.get().reason

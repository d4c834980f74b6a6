"""Bad messages are refused with a clear reason, recorded, and write nothing else."""

from __future__ import annotations

import json

import pytest

from agents.wire import MAX_BODY_BYTES, _mac, seal, signing_key
from dashboard.telemetry import ingest
from dashboard.telemetry.models import BatchReceipt, Rejection, Run, RunGpu, SampleWindow
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, register, simple_batch

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
    message["node"] = "node-nobody"
    rejected_with(ingest.ingest_batch(message), "unknown node 'node-nobody'")


def test_forged_batch_with_wrong_key_is_rejected():
    node = register("node-a")
    forged = seal("batch", node.name, json.loads(simple_batch(node)["body"]), signing_key("guessed-token"))
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


def test_malformed_body_is_rejected():
    node = register("node-a")
    message = seal("batch", node.name, {"run": "r"}, node.key)
    rejected_with(ingest.ingest_batch(message), "stream")


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

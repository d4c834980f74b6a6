"""POST /api/ingest: good envelopes are queued (202); bad input gets the status that names the problem, a
recorded reason, and writes nothing else; a deep queue or a dead broker makes agents wait (429, 503)."""

from __future__ import annotations

import json
import zlib

import pytest
from django.test import Client

from dashboard.telemetry import http_ingest
from dashboard.telemetry.models import BatchReceipt, Rejection, Run, RunGpu, SampleWindow
from tests.dashboard.telemetry.http_support import celery_on_broker, nothing_stored, post, reasons
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, register, simple_batch
from tests.worker_process import flush
from wattwise_agent.wire import seal

pytestmark = pytest.mark.django_db


def open_run(node, stream="s1"):
    return envelope(node, {"run": "run-1", "stream": stream, "started_ms": T0_MS, "tags": []}, kind="open_run")


def close_run(node, last_seq, stream="s1"):
    return envelope(node, {"run": "run-1", "stream": stream, "ended_ms": T0_MS + 10_000, "last_seq": last_seq},
                    kind="close_run")


def refused(response, status: int, words: str) -> None:
    assert response.status_code == status, response.content
    assert words in response.json()["detail"]
    assert any(words in reason for reason in reasons()), reasons()
    assert nothing_stored()


# --- accepted --------------------------------------------------------------------------------------


def test_a_signed_batch_is_queued_and_stored(client):
    node = register("node-a")
    response = post(client, simple_batch(node))
    assert response.status_code == 202 and response.json() == {"queued": 1}
    assert SampleWindow.objects.count() == 1 and RunGpu.objects.get().samples == 10
    assert not Rejection.objects.exists()


def test_a_gzipped_list_is_queued_in_order_and_a_whole_run_is_stored(client):
    node = register("node-a")
    messages = [open_run(node), simple_batch(node, seq=0), simple_batch(node, seq=1), close_run(node, 1)]
    response = post(client, messages, compress=True)
    assert response.status_code == 202 and response.json() == {"queued": 4}
    run = Run.objects.get(name="run-1")
    assert run.status == Run.Status.FINISHED
    assert BatchReceipt.objects.count() == 2 and RunGpu.objects.get().samples == 20


def test_csrf_does_not_apply_the_envelopes_signature_authenticates_them():
    node = register("node-a")
    response = post(Client(enforce_csrf_checks=True), simple_batch(node))
    assert response.status_code == 202


def test_a_duplicate_delivery_is_accepted_and_stored_once(client):
    node = register("node-a")
    message = simple_batch(node)
    assert post(client, message).status_code == 202
    assert post(client, message).status_code == 202
    assert BatchReceipt.objects.count() == 1 and RunGpu.objects.get().samples == 10


# --- refused as a whole request --------------------------------------------------------------------


def test_malformed_json_is_refused_with_400(client):
    register("node-a")
    refused(post(client, b'{"v": 1, "kind": "batch", '), 400, "body is not valid JSON")


def test_json_nested_beyond_reading_is_refused_with_400(client):
    refused(post(client, b"[" * 100_000 + b"]" * 100_000), 400, "body nests deeper than a JSON reader can follow")


def test_json_that_is_not_an_envelope_is_refused_with_400(client):
    refused(post(client, b'"hello"'), 400, "body must be one envelope (a JSON object) or a non-empty list")
    refused(post(client, b"[]"), 400, "non-empty list of envelopes")


def test_a_wrong_content_type_is_refused_with_415(client):
    node = register("node-a")
    response = post(client, simple_batch(node), content_type="application/x-www-form-urlencoded")
    refused(response, 415, "unsupported content type 'application/x-www-form-urlencoded': send application/json")


def test_an_unknown_content_encoding_is_refused_with_415(client):
    node = register("node-a")
    response = post(client, simple_batch(node), headers={"Content-Encoding": "br"})
    refused(response, 415, "unsupported content encoding 'br'")


def test_an_oversized_body_is_refused_with_413_before_it_is_read(client):
    too_large = b" " * (http_ingest.MAX_REQUEST_BYTES + 1)
    refused(post(client, too_large), 413, f"request too large: {len(too_large)} bytes")


def test_a_gzip_bomb_is_refused_with_413_without_inflating_it_whole(client):
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    spaces = b" " * (1024 * 1024)
    parts = [deflate.compress(b"[")]
    parts += [deflate.compress(spaces) for _ in range(4 * http_ingest.MAX_REQUEST_BYTES // len(spaces))]
    bomb = b"".join([*parts, deflate.compress(b"]"), deflate.flush()])
    assert len(bomb) < 100 * 1024  # a small request that would inflate to 64 MiB
    response = post(client, bomb, headers={"Content-Encoding": "gzip"})
    refused(response, 413, "request too large once decompressed")


def test_a_body_that_is_not_gzip_as_declared_is_refused_with_400(client):
    node = register("node-a")
    response = post(client, json.dumps(simple_batch(node)).encode(), headers={"Content-Encoding": "gzip"})
    refused(response, 400, "body is not valid gzip")


def test_too_many_envelopes_in_one_request_are_refused_with_413(client):
    node = register("node-a")
    message = simple_batch(node)
    refused(post(client, [message] * (http_ingest.MAX_ENVELOPES_PER_REQUEST + 1)), 413, "too many envelopes")


# --- refused envelopes -----------------------------------------------------------------------------


def test_a_message_signed_with_an_unknown_token_is_refused_with_401(client):
    node = register("node-a")
    guessed = seal("batch", node.name, json.loads(simple_batch(node)["body"]), "guessed-token")
    refused(post(client, guessed), 401, f"unknown key {guessed['key']}")


def test_a_forged_signature_is_refused_with_401(client):
    node = register("node-a")
    message = simple_batch(node)
    message["body"] = message["body"].replace('"run-1"', '"run-2"')  # altered after signing
    response = post(client, message)
    refused(response, 401, "bad signature")
    assert response["WWW-Authenticate"]
    assert Rejection.objects.get().node.name == "node-a"  # type: ignore[union-attr]


def test_an_unknown_node_is_refused_with_401(client):
    stranger = register("node-a")
    message = simple_batch(stranger)
    del message["key"]  # as agents before key ids send it: found by name
    message["node"] = "node-nobody"
    refused(post(client, message), 401, "unknown node 'node-nobody'")


def test_a_message_passed_off_as_another_projects_node_is_refused_with_401(client):
    ours, theirs = register("node-a", "vision"), register("node-b", "speech")
    message = simple_batch(ours)
    message["node"] = theirs.name  # signed with node-a's token, claiming node-b (project "speech")
    refused(post(client, message), 401, "bad signature")


def test_an_invalid_payload_is_refused_with_400_naming_the_field(client):
    node = register("node-a")
    gpu = gpu_entry("GPU-1", [T0_MS, T0_MS + 100], [1, 2])
    gpu["util_pct"] = [50, 4500]
    refused(post(client, envelope(node, batch_payload([gpu]))), 400, "gpus[0].util_pct[1]: expected whole numbers")


def test_a_list_with_one_bad_envelope_queues_none_of_it_and_names_the_bad_one(client):
    node = register("node-a")
    gpu = gpu_entry("GPU-1", [T0_MS + 1000, T0_MS + 1100], [1, 2])
    gpu["temp_c"] = [60]  # one value for two readings
    bad = envelope(node, batch_payload([gpu], seq=1))
    response = post(client, [open_run(node), simple_batch(node, seq=0), bad, close_run(node, 1)])
    refused(response, 400, "gpus[0].temp_c: has 1 values but t_ms has 2")
    assert response.json()["detail"].startswith("envelope 2: ") and response.json()["index"] == 2
    assert Rejection.objects.count() == 1  # the bad one; the others were refused only with it


def test_in_a_list_a_token_problem_answers_before_a_malformed_envelope(client):
    node = register("node-a")
    malformed = envelope(node, {"run": "r"})
    forged = seal("batch", node.name, json.loads(simple_batch(node)["body"]), "guessed-token")
    response = post(client, [malformed, forged])
    assert response.status_code == 401 and response.json()["index"] == 1
    assert Rejection.objects.count() == 2 and nothing_stored()


def test_a_replayed_batch_is_accepted_by_the_view_then_rejected_by_the_worker(client):
    node = register("node-a")
    assert post(client, simple_batch(node, seq=0)).status_code == 202
    # Same (node, stream, seq), different content: only the stored receipts can tell, so the task does.
    response = post(client, simple_batch(node, seq=0, start_mj=5_000_000))
    assert response.status_code == 202
    assert reasons() == ["replayed sequence number: batch 0 of stream s1 was already stored with different content"]
    assert SampleWindow.objects.count() == 1 and RunGpu.objects.get().energy_j == pytest.approx(9 * 30.0)


def test_a_get_is_not_allowed_and_writes_nothing(client):
    assert client.get(http_ingest_path()).status_code == 405
    assert not Rejection.objects.exists()


def http_ingest_path() -> str:
    from django.urls import reverse

    return reverse("api:ingest")


# --- backpressure, on a real Redis broker with no worker ---------------------------------------------


def test_a_queue_deeper_than_the_bound_answers_429_with_retry_after(client, redis_url, settings, monkeypatch):
    settings.WATTWISE_INGEST_MAX_QUEUE = 2
    monkeypatch.setattr(http_ingest, "DEPTH_REFRESH_S", 0.0)  # measure on every request
    flush(redis_url)
    node = register("node-a")
    with celery_on_broker(redis_url):
        answers = [post(client, m).status_code for m in (open_run(node), simple_batch(node, seq=0),
                                                          simple_batch(node, seq=1))]
        busy = post(client, simple_batch(node, seq=2))
        depth = http_ingest.gauge().measure()
    assert answers == [202, 202, 202]
    assert busy.status_code == 429 and busy["Retry-After"] == str(http_ingest.RETRY_AFTER_BUSY_S)
    assert "3 messages queued (limit 2)" in busy.json()["detail"]
    assert depth == 3  # what was accepted waits for a worker; the refused batch was not queued
    assert not Rejection.objects.exists() and nothing_stored()


def test_an_unreachable_broker_answers_503_with_retry_after(client):
    node = register("node-a")
    with celery_on_broker("redis://127.0.0.1:1/0"):
        response = post(client, simple_batch(node))
    assert response.status_code == 503 and response["Retry-After"] == str(http_ingest.RETRY_AFTER_UNAVAILABLE_S)
    assert "broker unreachable" in response.json()["detail"]
    assert not Rejection.objects.exists() and nothing_stored()

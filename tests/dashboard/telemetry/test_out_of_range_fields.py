"""Every field out of the range its column holds is refused with a recorded reason, never a traceback (issue 15,
item 7): the wire's limits are the columns' limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dashboard.telemetry import ingest
from dashboard.telemetry.models import BatchReceipt, Rejection, Run, RunGpu, RunNode, SampleWindow
from tests.factories import T0_MS, RegisteredNode, envelope, register, simple_batch
from wattwise_agent.wire import _mac, key_id

pytestmark = pytest.mark.django_db


def batch_with(node: RegisteredNode, change: dict[str, Any], gpu_change: dict[str, Any] | None = None) -> dict:
    payload = json.loads(simple_batch(node)["body"])
    payload.update(change)
    payload["gpus"][0].update(gpu_change or {})
    return envelope(node, payload)


def open_run_with(node: RegisteredNode, change: dict[str, Any]) -> dict:
    payload = {"run": "run-1", "stream": "s1", "started_ms": T0_MS, "backend": "nvml", **change}
    return envelope(node, payload, kind="open_run")


def refused(outcome: ingest.Outcome, words: str) -> None:
    assert outcome.status == "rejected", outcome
    assert words in outcome.detail
    assert Rejection.objects.filter(reason__contains=words).count() == 1
    assert not (SampleWindow.objects.exists() or BatchReceipt.objects.exists() or RunGpu.objects.exists()
                or RunNode.objects.exists())


@pytest.mark.parametrize(
    "change, gpu_change, words",
    [
        ({"seq": 2**63}, None, "seq: expected a non-negative integer below 2**63"),
        ({}, {"index": 2**31}, "gpus[0].index: expected a device index below 2**31"),
        ({"stream": "s" * 100}, None, "stream: expected a non-empty string of at most 64 characters"),
        ({}, {"prev_t_ms": T0_MS - 100, "prev_energy_mj": 2**64}, "gpus[0].prev_energy_mj: expected an energy"),
        ({"window_start_ms": 253_402_300_800_000}, None, "window_start_ms: expected a Unix time in milliseconds"),
        ({"run": "run\x00one"}, None, "run: contains a NUL character"),
        ({"run": "run\ud800"}, None, "run: expected a non-empty string of at most 200 characters, got 'run\\ud800'"),
        ({}, {"uuid": "GPU-\x00"}, "gpus[0].uuid: contains a NUL character"),
        ({"events": [{"t_ms": T0_MS, "kind": "step_end", "note": "a\x00b"}]}, None,
         "events[0].note: contains a NUL character"),
        ({"events": [{"t_ms": T0_MS, "kind": "step_end", "n\x00te": 1}]}, None,
         "events[0]: a field name contains a NUL character"),
    ],
)
def test_an_out_of_range_batch_field_is_a_recorded_rejection(change, gpu_change, words) -> None:
    node = register("node-a")
    refused(ingest.ingest_batch(batch_with(node, change, gpu_change)), words)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"stream": "s" * 65}, "stream: expected a non-empty string of at most 64 characters"),
        ({"backend": "b" * 33}, "backend: expected a string of at most 32 characters"),
        ({"host": "h\x00st"}, "host: contains a NUL character"),
        ({"tags": ["t\ud800"]}, "tags[0]: expected a non-empty string of at most 64 characters, got 't\\ud800'"),
        ({"started_ms": 2**53 - 1}, "started_ms: expected a Unix time in milliseconds"),
    ],
)
def test_an_out_of_range_open_run_field_is_a_recorded_rejection(change, words) -> None:
    node = register("node-a")
    refused(ingest.open_run(open_run_with(node, change)), words)
    assert not Run.objects.exists()


def test_a_close_run_with_a_sequence_beyond_a_bigint_is_a_recorded_rejection() -> None:
    node = register("node-a")
    message = envelope(node, {"run": "run-1", "stream": "s1", "ended_ms": T0_MS, "last_seq": 2**63}, kind="close_run")
    refused(ingest.close_run(message), "last_seq: expected a non-negative integer below 2**63")


@pytest.mark.parametrize("name, words", [("node\x00a", "node: contains a NUL character"),
                                         ("node\udc00", "node: expected a non-empty string of at most 200")])
def test_a_node_name_no_column_can_hold_is_refused_and_recorded(name: str, words: str) -> None:
    node = register("node-a")
    message = simple_batch(node)
    message["node"] = name  # as it arrives from the broker, decoded: the signature cannot even be computed
    refused(ingest.ingest_batch(message), words)
    assert Rejection.objects.get().node_name == name.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")


def test_a_body_with_an_unpaired_surrogate_is_refused_and_recorded() -> None:
    node = register("node-a")
    message = simple_batch(node)
    message["body"] = message["body"].replace('"run-1"', '"run-\udfff"')
    refused(ingest.ingest_batch(message), "body: contains an unpaired surrogate")


def test_a_body_nested_beyond_the_limit_is_refused_and_recorded() -> None:
    node = register("node-a")
    body = '{"run": ' + "[" * 100_000 + "]" * 100_000 + "}"
    message = {"v": 1, "kind": "batch", "node": node.name, "key": key_id(node.token), "body": body,
               "sig": _mac(node.key, "batch", node.name, body)}
    refused(ingest.ingest_batch(message), "body nests deeper than")

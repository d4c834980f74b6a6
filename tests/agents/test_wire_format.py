"""The wire format (``wattwise_agent.wire``): one set of models for what the agent sends and the app reads.

Envelopes sealed before the format became models still open, byte for byte; every refusal names the
field path and what is wrong; columns come out as int64 arrays.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from wattwise_agent import wire

# A batch envelope as wire format v1 sealed it before its models existed (token "a-node-token").
SEALED_BEFORE = {
    "v": 1, "kind": "batch", "node": "gpu-node-01",
    "body": '{"run":"gpt3-pretrain","stream":"a1b2","seq":0,"simulated":false,"window_start_ms":1767225600000,'
            '"window_end_ms":1767225600100,"gpus":[{"uuid":"GPU-1","index":0,"name":"NVIDIA H100",'
            '"energy_source":"counter","power_field":"instant","prev_t_ms":null,"prev_energy_mj":null,'
            '"t_ms":[1767225600000,1767225600100],"energy_mj":[1000,31000],"power_mw":[300000,300000],'
            '"sm_clock_mhz":[1980,1980],"util_pct":[90,91],"temp_c":[60,61]}],'
            '"events":[{"t_ms":1767225600050,"kind":"step_end","step":0}]}',
    "sig": "3e668ec7e293b3eb30ed942fee095e7871d33f477885c5dda9948b4ad57e31d8",
}
TOKEN = "a-node-token"
KEY = wire.signing_key(TOKEN)


def test_the_signing_key_and_seal_are_those_of_wire_format_v1() -> None:
    assert KEY.hex() == "8a98fa481818c05457dd673170acf119b824359dd8d6b02b6f8a74f9ac9f0ab0"
    payload = json.loads(SEALED_BEFORE["body"])
    # The key id joins the envelope; the signature is the one v1 made before it.
    assert wire.seal("batch", "gpu-node-01", payload, TOKEN) == {**SEALED_BEFORE, "key": "a3d4ff4de78bf634"}


def test_a_key_id_names_the_token_and_reveals_nothing_of_its_signing_key() -> None:
    assert wire.key_id(TOKEN) == "a3d4ff4de78bf634"  # sha256("wattwise-key-id-v1:" + token), 16 hex digits
    assert wire.key_id("another token") != wire.key_id(TOKEN)
    assert wire.key_id(TOKEN) not in KEY.hex()


def test_an_envelope_without_a_key_id_is_still_read_and_a_malformed_one_is_refused() -> None:
    assert wire.read_envelope(SEALED_BEFORE).key is None
    assert wire.read_envelope({**SEALED_BEFORE, "key": "a3d4ff4de78bf634"}).key == "a3d4ff4de78bf634"
    with pytest.raises(wire.WireError, match=r"^key: expected a key id \(16 hex digits\), or absent, got 'A3D4'"):
        wire.read_envelope({**SEALED_BEFORE, "key": "A3D4"})


def test_an_envelope_sealed_before_opens_and_decodes_to_int64_columns() -> None:
    batch = wire.decode_batch(wire.open_envelope(SEALED_BEFORE, "batch", KEY))
    [gpu] = batch.gpus
    assert (batch.run, batch.seq, batch.samples, gpu.uuid, gpu.power_field) == ("gpt3-pretrain", 0, 2, "GPU-1", "instant")
    for column in wire.SAMPLE_COLUMNS:
        assert getattr(gpu, column).dtype == np.int64
    assert gpu.energy_deltas_mj().tolist() == [0, 30_000]
    assert [(e.t_ms, e.kind, e.fields) for e in batch.events] == [(1767225600050, "step_end", {"step": 0})]


def batch(**changes: Any) -> dict[str, Any]:
    payload = json.loads(SEALED_BEFORE["body"])
    for path, value in changes.items():
        *parents, last = path.split("__")
        target: Any = payload
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
    return payload


@pytest.mark.parametrize(("changes", "message"), [
    ({"run": ""}, "run: expected a non-empty string of at most 200 characters, got ''"),
    ({"seq": -1}, "seq: expected a non-negative integer below 2**63, got -1"),
    ({"simulated": "no"}, "simulated: expected true or false, got 'no'"),
    ({"gpus": []}, "gpus: expected at least 1 item(s)"),
    ({"gpus__0__energy_source": "guess"}, "gpus[0].energy_source: expected 'counter' or 'power_integration', got 'guess'"),
    ({"gpus__0__util_pct__1": 4500}, "gpus[0].util_pct[1]: expected whole numbers in [0, 100] (wrong units?), got 4500"),
    ({"gpus__0__energy_mj__0": 1.5}, "gpus[0].energy_mj[0]: expected whole numbers"),
    ({"gpus__0__temp_c": [60]}, "gpus[0].temp_c: has 1 values but t_ms has 2"),
    ({"gpus__0__t_ms": [1767225600100, 1767225600000]}, "gpus[0].t_ms: timestamps must strictly increase"),
    ({"gpus__0__t_ms": []}, "gpus[0].t_ms: no samples"),
    ({"gpus__0__prev_t_ms": 1767225599900}, "gpus[0]: prev_t_ms and prev_energy_mj must be given together"),
    ({"window_end_ms": 1767225600050}, "gpus[0].t_ms: samples fall outside the batch window"),
    ({"events__0__t_ms": 1}, "events[0].t_ms: event falls outside the batch window"),
    ({"events__0__step": True}, "events[0].step: expected a string of at most 200 characters or a finite number, got True"),
])
def test_a_refusal_names_the_field_and_what_is_wrong(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(wire.WireError) as refused:
        wire.decode_batch(batch(**changes))
    assert str(refused.value).startswith(message)


def test_a_refusal_lists_the_first_problems_and_counts_the_rest() -> None:
    with pytest.raises(wire.WireError) as refused:
        wire.decode_batch({"run": "r"})
    assert str(refused.value) == (
        "stream: missing; expected a non-empty string of at most 64 characters; "
        "seq: missing; expected a non-negative integer below 2**63; "
        "window_start_ms: missing; expected a Unix time in milliseconds before the year 10000; and 2 more problem(s)"
    )


def test_the_envelope_is_checked_before_its_signature() -> None:
    with pytest.raises(wire.WireError, match=r"^message: not an object"):
        wire.read_envelope(["not", "an", "envelope"])
    with pytest.raises(wire.WireError, match=r"^v: expected wire version 1, the one this app speaks, got 2"):
        wire.read_envelope({**SEALED_BEFORE, "v": 2})
    with pytest.raises(wire.WireError, match=r"^body: message too large: \d+ bytes, limit 4194304"):
        wire.read_envelope({**SEALED_BEFORE, "body": " " * (wire.MAX_BODY_BYTES + 1)})
    with pytest.raises(wire.WireError, match="expected a 'open_run' message, got 'batch'"):
        wire.open_envelope(SEALED_BEFORE, "open_run", KEY)
    with pytest.raises(wire.BadSignature, match=r"^bad signature"):
        wire.open_envelope(SEALED_BEFORE, "batch", wire.signing_key("another token"))


def test_seal_refuses_what_the_app_would_refuse_unless_told_not_to_check() -> None:
    bad = batch(gpus__0__util_pct__1=4500)
    with pytest.raises(wire.WireError, match=r"gpus\[0\]\.util_pct\[1\]"):
        wire.seal("batch", "gpu-node-01", bad, TOKEN)
    with pytest.raises(wire.WireError, match=r"^node: expected a non-empty string"):
        wire.seal("batch", "", batch(), TOKEN)
    forged = wire.seal("batch", "gpu-node-01", bad, TOKEN, check=False)
    assert wire.open_envelope(forged, "batch", KEY) == bad  # signed as given: for tests of the app's refusals


def test_open_run_and_profile_payloads_have_their_own_models() -> None:
    opened = wire.parse(wire.OpenRun, {"run": "r", "stream": "s", "started_ms": 1, "region": "AWS:eu-north-1",
                                       "gpus": [{"uuid": "GPU-1", "index": 0, "energy_source": "counter",
                                                 "architecture": "Hopper"}]})
    assert opened.region == "aws:eu-north-1" and opened.zone is None and opened.tags == []
    with pytest.raises(wire.WireError, match=r"^tags: 101 items, limit 100"):
        wire.parse(wire.OpenRun, {"run": "r", "stream": "s", "started_ms": 1, "tags": ["t"] * 101})
    with pytest.raises(wire.WireError, match=r"^p_blocking_w: expected a positive power in W below 10,000 W"):
        wire.parse(wire.StageProfile, {"name": "p", "csv": "x", "recorded_ms": 1, "p_blocking_w": float("nan")})
    assert wire.Batch.model_json_schema()["properties"]["gpus"]["maxItems"] == wire.MAX_GPUS_PER_BATCH

"""What a stream sends: open_run first, signed batches in sequence, close_run last; no secrets."""

from __future__ import annotations

import json

import pytest

from tests.agents.support import KEY, TOKEN, batches, opened
from wattwise_agent import __version__, wire
from wattwise_agent.backends.simulated import SimulatedBackend
from wattwise_agent.clock import VirtualClock
from wattwise_agent.streamer import Streamer
from wattwise_agent.transport import MemoryTransport

T0_MS = 1_767_225_600_000


def streamed(seconds: float = 12, **kwargs: object) -> tuple[Streamer, MemoryTransport]:
    transport = MemoryTransport()
    streamer = Streamer(SimulatedBackend(2, node="n1", seed=0), transport, run="exp-1", token=TOKEN, node="n1",
                        clock=VirtualClock(T0_MS), tags=["demo", "llm"], host="host-a", **kwargs)  # type: ignore[arg-type]
    streamer.open()
    streamer.run(seconds)
    return streamer, transport


def test_open_run_describes_the_stream_and_its_gpus() -> None:
    streamer, transport = streamed()
    streamer.close()
    first = transport.envelopes[0]
    assert first["kind"] == "open_run" and first["node"] == "n1"
    payload = opened(first)
    assert payload == {
        "run": "exp-1",
        "stream": streamer.stream,
        "started_ms": T0_MS,
        "simulated": True,
        "backend": "simulated",
        "host": "host-a",
        "tags": ["demo", "llm"],
        "gpus": [g.open_run_entry() for g in streamer.gpus],
        "agent_version": __version__,
    }
    assert {"uuid", "index", "name", "energy_source", "power_field"} <= set(payload["gpus"][0])


def test_batches_follow_in_sequence_and_close_run_accounts_for_them() -> None:
    streamer, transport = streamed()
    summary = streamer.close()
    kinds = [e["kind"] for e in transport.envelopes]
    assert kinds == ["open_run"] + ["batch"] * 3 + ["close_run"]
    payloads = [opened(e) for e in transport.envelopes]
    assert [p["seq"] for p in payloads[1:-1]] == [0, 1, 2]
    assert {p["stream"] for p in payloads} == {streamer.stream}
    assert payloads[-1] == {"run": "exp-1", "stream": streamer.stream, "ended_ms": T0_MS + 12_000,
                            "last_seq": 2, "samples_sent": 2 * 121}
    assert summary.batches_sent == 3 and summary.samples_sent == 242


def test_each_session_is_a_new_stream() -> None:
    a, _ = streamed(1)
    b, _ = streamed(1)
    assert a.stream != b.stream and len(a.stream) == 32


def test_every_message_is_signed_with_the_node_key_and_never_carries_the_token() -> None:
    streamer, transport = streamed()
    streamer.close()
    for envelope in transport.envelopes:
        wire.open_envelope(envelope, envelope["kind"], KEY)
        with pytest.raises(wire.WireError, match="bad signature"):
            wire.open_envelope(envelope, envelope["kind"], wire.signing_key("another node's token"))
    assert TOKEN not in json.dumps(transport.envelopes)


def test_a_tampered_batch_is_rejected() -> None:
    streamer, transport = streamed()
    streamer.close()
    forged = dict(transport.envelopes[1])
    forged["body"] = forged["body"].replace('"run":"exp-1"', '"run":"exp-2"')
    with pytest.raises(wire.WireError, match="bad signature"):
        wire.open_envelope(forged, "batch", KEY)


def test_marker_fields_must_be_strings_or_numbers() -> None:
    streamer, transport = streamed(1)
    with pytest.raises(wire.WireError, match=r"^stage: expected a string .* or a finite number, got a list of 3$"):
        streamer.mark("stage_begin", stage=["not", "a", "string"])  # type: ignore[arg-type]
    with pytest.raises(wire.WireError, match="finite number, got nan"):
        streamer.mark("loss", value=float("nan"))  # JSON has no NaN: refuse it here, not in the sampler
    with pytest.raises(wire.WireError, match=r"^kind: expected a non-empty string"):
        streamer.mark(" ")
    streamer.mark("checkpoint", path="/ckpt/" + "x" * 300, loss=0.25)  # long text is cut, not refused
    streamer.tick()
    streamer.close()
    [checkpoint] = [e for b in batches(transport.envelopes) for e in b.events if e.kind == "checkpoint"]
    assert checkpoint.fields == {"path": ("/ckpt/" + "x" * 300)[: wire.MAX_NAME_CHARS], "loss": 0.25}


def test_names_tags_and_places_are_checked_with_the_wires_rules_before_anything_is_sent() -> None:
    def refused(**kwargs: object) -> str:
        options: dict[str, object] = {"run": "r", "node": "n", **kwargs}
        with pytest.raises(wire.WireError) as info:
            Streamer(SimulatedBackend(1), MemoryTransport(), token=TOKEN, **options)  # type: ignore[arg-type]
        return str(info.value)

    assert refused(run=" ") == "run: expected a non-empty string of at most 200 characters, got ' '"
    assert refused(node="n" * 201).startswith("node: expected a non-empty string of at most 200 characters")
    assert refused(tags=["ok", "t" * 65]).startswith("tags[1]: expected a non-empty string of at most 64 characters")
    assert refused(zone="not a zone") == ("zone: expected a grid zone id such as SE-SE3, or null, "
                                          "got 'not a zone'")
    assert refused(region="eu-north-1").startswith("region: expected a cloud region such as aws:eu-north-1")


def test_rates_beyond_what_whole_millisecond_timestamps_allow_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        Streamer(SimulatedBackend(1), MemoryTransport(), run="r", token=TOKEN, node="n", rate_hz=1000)

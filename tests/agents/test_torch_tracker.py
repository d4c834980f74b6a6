"""The torch integration: a real (tiny, CPU) training loop streams step and stage markers."""

from __future__ import annotations

import json
import time

import pytest

from tests.agents.support import TOKEN, batches, opened
from wattwise_agent.torch_hooks import Tracker
from wattwise_agent.transport import MemoryTransport


@pytest.mark.torch
def test_step_and_stage_markers_from_a_real_training_loop_arrive_in_the_batches() -> None:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    inputs = torch.randn(256, 16)
    targets = inputs.sum(dim=1, keepdim=True)
    transport = MemoryTransport()
    losses = []
    with Tracker("tiny-mlp", backend="simulated", gpus=2, transport=transport, token=TOKEN, node="trainer",
                 rate_hz=50, window_s=0.2) as tracker:
        for step in range(20):
            with tracker.stage("forward"):
                loss = torch.nn.functional.mse_loss(model(inputs), targets)
            with tracker.stage("backward"):
                optimizer.zero_grad()
                loss.backward()
            optimizer.step()
            losses.append(loss.item())
            tracker.step(step)
            time.sleep(0.01)
    assert losses[-1] < losses[0]
    assert tracker.error is None and tracker.summary is not None
    assert tracker.summary.samples_sent > 0 and tracker.summary.spooled == 0
    decoded = batches(transport.envelopes)
    events = [e for b in decoded for e in b.events]
    assert [e.fields["step"] for e in events if e.kind == "step_end"] == list(range(20))
    stages = [(e.kind, e.fields["stage"]) for e in events if e.kind.startswith("stage_")]
    assert stages == [("stage_begin", "forward"), ("stage_end", "forward"),
                      ("stage_begin", "backward"), ("stage_end", "backward")] * 20
    times = [e.t_ms for e in events]
    assert times == sorted(times)
    assert len(decoded) > 1  # markers were spread over several windows
    assert opened(transport.envelopes[-1])["samples_sent"] == tracker.summary.samples_sent


def test_steps_are_numbered_from_zero_when_no_number_is_given() -> None:
    transport = MemoryTransport()
    with Tracker("r", backend="simulated", transport=transport, token=TOKEN, node="n", rate_hz=50) as tracker:
        for _ in range(3):
            tracker.step()
    steps = [e.fields["step"] for b in batches(transport.envelopes) for e in b.events if e.kind == "step_end"]
    assert steps == [0, 1, 2]


def test_tracker_needs_a_token() -> None:
    with pytest.raises(ValueError, match="token"), Tracker("r", backend="simulated", transport=MemoryTransport()):
        pass


def test_tracker_names_the_zone_and_region_in_the_open_run_message() -> None:
    transport = MemoryTransport()
    with Tracker("r", backend="simulated", transport=transport, token=TOKEN, node="n", rate_hz=50,
                 zone="SE-SE3", region="aws:eu-north-1"):
        pass
    opened = [json.loads(e["body"]) for e in transport.envelopes if e["kind"] == "open_run"]
    assert opened[0]["zone"] == "SE-SE3" and opened[0]["region"] == "aws:eu-north-1"

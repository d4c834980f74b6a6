"""``@wattwise_agent.track``: each call of a plain function is a tracked run, measured around the call."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

import wattwise_agent
from tests.agents.fake_nvml import FakeGpu, FakeNvml
from tests.agents.support import TOKEN, batches, energy_by_gpu_mj, opened
from wattwise_agent.torch_hooks import Tracker
from wattwise_agent.tracked_function import TrackedFunction
from wattwise_agent.transport import MemoryTransport

SIMULATED = {"backend": "simulated", "token": TOKEN, "node": "n", "rate_hz": 50, "window_s": 0.2}


def test_a_decorated_function_returns_its_result_and_each_call_is_a_run_of_its_own() -> None:
    transport = MemoryTransport()

    @wattwise_agent.track("nightly-eval", transport=transport, **SIMULATED)
    def evaluate(n: int) -> int:
        """Adds up to n."""
        time.sleep(0.05)  # the function takes some time: readings at both ends are milliseconds apart
        return sum(range(n))

    assert evaluate(10) == 45
    first = evaluate.tracker
    assert evaluate(4) == 6
    assert evaluate.tracker is not first and evaluate.__name__ == "evaluate" and evaluate.__doc__ == "Adds up to n."
    kinds = [e["kind"] for e in transport.envelopes]
    assert kinds.count("open_run") == 2 and kinds.count("close_run") == 2 and kinds[-1] == "close_run"
    assert {opened(e)["run"] for e in transport.envelopes if e["kind"] == "open_run"} == {"nightly-eval"}
    for tracker in (first, evaluate.tracker):
        assert tracker is not None and tracker.summary is not None and tracker.error is None
        assert tracker.summary.total_energy_j > 0 and tracker.summary.duration_s > 0
    # What each call measured is what it sent, counted as the app counts it.
    streams = {opened(e)["stream"] for e in transport.envelopes if e["kind"] == "open_run"}
    for tracker in (first, evaluate.tracker):
        mine = [e for e in transport.envelopes if e["kind"] == "batch"
                and json.loads(e["body"])["stream"] == tracker.summary.stream]
        assert {u: mj / 1000 for u, mj in energy_by_gpu_mj(batches(mine)).items()} == tracker.summary.energy_j
    assert len(streams) == 2


def test_a_bare_decorator_names_the_run_after_the_function_and_records_it_locally_with_nothing_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gpu = FakeGpu("GPU-0f1e2d3c")
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([gpu]))
    for name in ("WATTWISE_URL", "WATTWISE_BROKER_URL", "WATTWISE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WATTWISE_RUNS_DIR", str(tmp_path))

    @wattwise_agent.track
    def finetune() -> str:
        gpu.energy_mj += 5_000  # the GPU's counter: 5 J spent during the call
        time.sleep(0.02)
        return "done"

    assert isinstance(finetune, TrackedFunction) and finetune.run == "finetune"
    assert finetune() == "done"
    summary = finetune.tracker.summary
    assert summary is not None and summary.run == "finetune"
    assert summary.measured is not None and summary.measured.gpu_energy_j == {"GPU-0f1e2d3c": 5.0}
    assert summary.recorded_to is not None and Path(summary.recorded_to).parent == tmp_path
    assert Path(summary.recorded_to).name.startswith("finetune-")


def test_on_end_gets_the_closed_tracker_also_when_the_function_raises() -> None:
    transport = MemoryTransport()
    ended: list[Tracker] = []

    @wattwise_agent.track("fails", on_end=ended.append, transport=transport, **SIMULATED)
    def broken() -> None:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        broken()
    assert ended == [broken.tracker] and ended[0].summary is not None
    assert [e["kind"] for e in transport.envelopes][-1] == "close_run"  # the run is closed in the app


def test_a_decorated_method_is_bound_to_its_instance() -> None:
    transport = MemoryTransport()

    class Model:
        scale = 3

        @wattwise_agent.track("method", transport=transport, **SIMULATED)
        def predict(self, x: int) -> int:
            return self.scale * x

    assert Model().predict(2) == 6
    assert isinstance(Model.__dict__["predict"], TrackedFunction)
    assert Model.__dict__["predict"].tracker.summary is not None


@pytest.mark.parametrize("run", ["", "   ", 42])
def test_a_run_name_must_be_a_non_empty_string(run: object) -> None:
    with pytest.raises(ValueError, match="run name"):
        wattwise_agent.track(run)  # type: ignore[call-overload]

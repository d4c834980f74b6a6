"""The team's rule on GPU clocks: dry run unless the code asks AND the machine permits; every lock reset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.agents.fake_nvml import FakeGpu, FakeNvml
from wattwise_agent.backends.nvml import NvmlBackend
from wattwise_agent.clock_guard import (
    ALLOW_CLOCK_CHANGES_ENV,
    ClockActuator,
    ClockChangesRefused,
    clock_changes_permitted,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argument", "environ", "permitted"),
    [(False, {}, False), (False, {ALLOW_CLOCK_CHANGES_ENV: "1"}, False), (True, {ALLOW_CLOCK_CHANGES_ENV: "1"}, True)],
)
def test_clocks_change_only_with_the_argument_and_the_variable(
    argument: bool, environ: dict[str, str], permitted: bool
) -> None:
    assert clock_changes_permitted(argument, environ) is permitted


@pytest.mark.parametrize("value", [None, "0", "true", "yes", " 1"])
def test_the_argument_without_the_variable_set_to_1_is_refused(value: str | None) -> None:
    environ = {} if value is None else {ALLOW_CLOCK_CHANGES_ENV: value}
    with pytest.raises(ClockChangesRefused, match="refusing to change GPU clocks"):
        clock_changes_permitted(True, environ)


def test_a_dry_run_actuator_records_changes_and_touches_nothing() -> None:
    nvml = FakeNvml([FakeGpu("GPU-a"), FakeGpu("GPU-b")])
    backend = NvmlBackend(nvml=nvml, environ={})
    actuator = ClockActuator(backend.clocks(), environ={ALLOW_CLOCK_CHANGES_ENV: "1"})
    assert (actuator.supported_mhz() or [])[:2] == [1980, 1965]  # reading is allowed, and changes nothing
    assert actuator.set_mhz(1410) and not actuator.set_mhz(1410) and actuator.set_mhz(1005)
    actuator.close()
    assert actuator.requested_mhz == [1410, 1005] and actuator.applied_mhz == []
    assert nvml.clock_calls == []


def test_a_real_actuator_locks_every_gpu_of_the_stage_and_resets_once() -> None:
    nvml = FakeNvml([FakeGpu("GPU-a"), FakeGpu("GPU-b")])
    backend = NvmlBackend(nvml=nvml, environ={})
    actuator = ClockActuator(backend.clocks(), allow_clock_changes=True, environ={ALLOW_CLOCK_CHANGES_ENV: "1"},
                             handle_sigterm=False)
    actuator.set_mhz(1410)
    actuator.set_mhz(1410)
    actuator.close()
    actuator.close()
    assert nvml.clock_calls == [("lock", "GPU-a", 1410, 1410), ("lock", "GPU-b", 1410, 1410),
                                ("reset", "GPU-a"), ("reset", "GPU-b")]
    with pytest.raises(RuntimeError, match="closed"):
        actuator.set_mhz(1005)


def test_nvml_power_limits_change_only_with_both_opt_ins_and_are_restored_to_the_default() -> None:
    from wattwise_agent.power_guard import PowerLimitActuator

    nvml = FakeNvml([FakeGpu("GPU-a"), FakeGpu("GPU-b", power_limit_range_mw=(200_500, 650_000),
                                  default_power_limit_mw=650_000)])
    backend = NvmlBackend(nvml=nvml, environ={})
    dry = PowerLimitActuator(backend.power_limits(), environ={ALLOW_CLOCK_CHANGES_ENV: "1"})
    assert dry.range_w() == (201, 650) and dry.set_w(400)  # the range every GPU accepts, in whole W
    dry.close()
    with pytest.raises(ClockChangesRefused):
        PowerLimitActuator(backend.power_limits(), allow_clock_changes=True, environ={})
    assert nvml.clock_calls == []
    actuator = PowerLimitActuator(backend.power_limits(), allow_clock_changes=True,
                                  environ={ALLOW_CLOCK_CHANGES_ENV: "1"}, handle_sigterm=False)
    actuator.set_w(400)
    actuator.close()
    assert nvml.clock_calls == [("power_limit", "GPU-a", 400_000), ("power_limit", "GPU-b", 400_000),
                                ("power_limit", "GPU-a", 700_000), ("power_limit", "GPU-b", 650_000)]


def test_a_guessed_multi_gpu_selection_never_gets_its_clocks_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    from wattwise_agent.plan_client import FrequencyPlanClient

    nvml = FakeNvml([FakeGpu("GPU-a"), FakeGpu("GPU-b")])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    plan = {"rank": 0, "frequencies": [["forward", 1410], ["backward", 1410]]}
    with pytest.raises(ClockChangesRefused, match=r"sees 2 GPUs .* pass gpus="):
        FrequencyPlanClient(plan, allow_clock_changes=True, environ={ALLOW_CLOCK_CHANGES_ENV: "1"})
    with FrequencyPlanClient(plan, gpus=["1"], allow_clock_changes=True, environ={ALLOW_CLOCK_CHANGES_ENV: "1"},
                             threaded=False, handle_sigterm=False) as client, client.instruction("forward"):
        pass
    assert nvml.clock_calls == [("lock", "GPU-b", 1410, 1410), ("reset", "GPU-b")]


SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    from wattwise_agent.backends.nvml import NvmlBackend
    from wattwise_agent.clock_guard import ClockActuator
    from tests.agents.fake_nvml import FakeGpu, FakeNvml

    class Recording(FakeNvml):
        def nvmlDeviceResetGpuLockedClocks(self, handle):
            print("reset", handle.uuid, flush=True)

    nvml = Recording([FakeGpu("GPU-a")])
    actuator = ClockActuator(NvmlBackend(nvml=nvml, environ={{}}).clocks(), allow_clock_changes=True,
                             environ={{"WATTWISE_ALLOW_CLOCK_CHANGES": "1"}})
    actuator.set_mhz(1200)
    print("locked", flush=True)
    if sys.argv[1] == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        print("still alive", flush=True)
""")


@pytest.mark.parametrize("ending", ["sigterm", "exit"])
def test_a_lock_is_reset_when_the_process_ends_without_closing(ending: str, tmp_path: Path) -> None:
    script = tmp_path / "lock.py"
    script.write_text(SCRIPT.format(root=str(ROOT)))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    result = subprocess.run([sys.executable, str(script), ending], capture_output=True, text=True, timeout=60,
                            env=environment, cwd=ROOT)
    assert result.stdout.splitlines() == ["locked", "reset GPU-a"], result.stderr
    if ending == "sigterm":
        assert result.returncode == -signal.SIGTERM  # still ended by SIGTERM, as it would have been
    else:
        assert result.returncode == 0

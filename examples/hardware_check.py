"""Read-only check of the agent on a machine with real NVIDIA GPUs (issue 12, "ready for hardware").

    python examples/hardware_check.py [--steps 200] [--out DIR]

On GPU 0 (or the first of CUDA_VISIBLE_DEVICES) it:

1. reads what the frequency-plan client and the power-limit optimiser would use: the supported SM clocks
   and the power-limit range and default, through the agent's own NVML backend;
2. trains a small MLP with torch on the GPU under a ``Tracker`` (local run file, no server), with the
   power-limit optimiser and, in a second phase, a frequency-plan client replaying a two-clock plan, both
   in dry run: neither opt-in is given, so no clock or limit is set;
3. compares the Tracker's measured energy with NVML's own total-energy counter read directly around the
   same span, and checks the GPU's power limit and application clocks are what they were before.

It prints one JSON object (also written to DIR/hardware_check.json) and exits 1 if anything changed on the
GPU or the energies disagree by more than 5 %. It never changes the GPU: do not add the opt-ins here.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Reading the same span two ways: the Tracker samples at 10 Hz, NVML's counter is continuous, so the
# two differ by at most about one sampling interval's energy at each end.
ENERGY_TOLERANCE = 0.05


def gpu_state(nvml: Any, handle: Any) -> dict[str, Any]:
    """What a clock lock or a power limit would change, read back for the before/after comparison."""
    state: dict[str, Any] = {"power_limit_mw": nvml.nvmlDeviceGetPowerManagementLimit(handle)}
    for name, clock in (("app_sm_clock_mhz", nvml.NVML_CLOCK_GRAPHICS), ("app_mem_clock_mhz", nvml.NVML_CLOCK_MEM)):
        try:
            state[name] = nvml.nvmlDeviceGetApplicationsClock(handle, clock)
        except nvml.NVMLError as exc:
            state[name] = f"unreadable: {exc}"
    return state


def train(torch: Any, tracker: Any, steps: int, plan_client: Any = None) -> float:
    """A small MLP's training steps on the GPU; returns the seconds they took."""
    model = torch.nn.Sequential(torch.nn.Linear(4096, 8192), torch.nn.GELU(), torch.nn.Linear(8192, 4096)).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    batch = torch.randn(2048, 4096, device="cuda")
    started = time.monotonic()
    for step in range(steps):
        with plan_client.step() if plan_client else contextlib.nullcontext():
            with plan_client.instruction("forward") if plan_client else tracker.stage("forward"):
                loss = model(batch).square().mean()
            with plan_client.instruction("backward") if plan_client else tracker.stage("backward"):
                loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        tracker.step(step)
    torch.cuda.synchronize()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps per phase (default 200)")
    parser.add_argument("--out", type=Path, default=None, help="where the run files and the report go")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in ("WATTWISE_ALLOW_CLOCK_CHANGES",):
        if os.environ.get(name):
            print(f"{name} is set: unset it, this check must not be able to change the GPU", file=sys.stderr)
            return 2

    import pynvml as nvml
    import torch

    from wattwise_agent.backends.nvml import NvmlBackend
    from wattwise_agent.plan_client import FrequencyPlanClient
    from wattwise_agent.torch_hooks import Tracker

    out = args.out or Path(tempfile.mkdtemp(prefix="wattwise-hardware-check-"))
    out.mkdir(parents=True, exist_ok=True)
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    before = gpu_state(nvml, handle)

    backend = NvmlBackend(gpus=["0"])
    try:
        gpu = backend.gpus[0]
        clocks = backend.clocks().supported_graphics_clocks_mhz()
        limits = backend.power_limits()
        report: dict[str, Any] = {
            "gpu": {"name": gpu.name, "uuid": gpu.uuid, "driver": nvml.nvmlSystemGetDriverVersion()},
            "supported_sm_clocks_mhz": {"count": len(clocks), "max": max(clocks), "min": min(clocks)},
            "power_limit_range_w": limits.power_limit_range_w(),
            "state_before": before,
        }
    finally:
        backend.close()

    # Phase 1: the power-limit optimiser, dry run (no opt-in), with the Tracker's energy against NVML's.
    energy_before_mj = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    with Tracker("hardware-check", gpus=["0"], out=out / "power-limit.jsonl", cpu=False,
                 optimize_power_limit={"eta": 0.5}) as tracker:
        seconds = train(torch, tracker, args.steps)
    energy_after_mj = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    assert tracker.summary is not None and tracker.summary.measured is not None
    summary = tracker.summary.measured
    nvml_j = (energy_after_mj - energy_before_mj) / 1000
    tracker_j = summary.total_energy_j
    choice = tracker.power_limit.choice if tracker.power_limit else None
    report["power_limit_dry_run"] = {
        "steps": args.steps, "seconds": round(seconds, 2),
        "planned_steps": tracker.power_limit.planned_steps if tracker.power_limit else None,
        "choice": choice.summary() if choice else "not reached (too few steps)",
        "dry_run": tracker.power_limit.dry_run if tracker.power_limit else None,
    }
    report["energy"] = {
        "tracker_j": round(tracker_j, 1), "nvml_counter_j": round(nvml_j, 1),
        "tracker_span_s": round(summary.duration_s, 2),
        "relative_difference": round((tracker_j - nvml_j) / nvml_j, 4) if nvml_j else None,
        "mean_power_w": round(tracker_j / summary.duration_s, 1) if summary.duration_s else None,
    }

    # Phase 2: a frequency-plan client replaying a plan of the highest and a middle clock, dry run.
    plan: dict[str, Any] = {"rank": 0, "frequencies": [["forward", max(clocks)], ["backward", sorted(clocks)[len(clocks) // 2]]]}
    with (Tracker("hardware-check-plan", gpus=["0"], out=out / "plan.jsonl", cpu=False) as tracker,
          FrequencyPlanClient(plan, backend="nvml", gpus=["0"], threaded=False) as client):
        train(torch, tracker, min(args.steps, 50), plan_client=client)
    report["plan_client_dry_run"] = {
        "plan_mhz": [f for _, f in plan["frequencies"]], "dry_run": client.dry_run,
        "would_have_set_mhz": client.requested_mhz[:4], "applied_mhz": client.applied_mhz,
        "realised": [dataclasses.asdict(row) for row in client.realised()],
    }

    after = gpu_state(nvml, handle)
    report["state_after"] = after
    nvml.nvmlShutdown()
    unchanged = after == before and not client.applied_mhz
    close = report["energy"]["relative_difference"] is not None and abs(report["energy"]["relative_difference"]) <= ENERGY_TOLERANCE
    report["verdict"] = {"gpu_unchanged": unchanged, "energy_within_5_percent": close}
    text = json.dumps(report, indent=2, default=str)
    (out / "hardware_check.json").write_text(text + "\n")
    print(text)
    return 0 if unchanged and close else 1


if __name__ == "__main__":
    sys.exit(main())

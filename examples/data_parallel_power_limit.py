"""Data-parallel training on emulated GPUs with the power-limit optimiser: run it under torchrun.

    WATTWISE_ALLOW_CLOCK_CHANGES=1 python -m torch.distributed.run --standalone --nproc-per-node 2 \\
        examples/data_parallel_power_limit.py --profile tests/agents/fixtures/a100_2_stages.csv \\
        --p-blocking 80 --allow-power-limits --out-dir /tmp/dp-power

Every process trains one replica of a small model on the CPU (gloo) and drives one emulated GPU
(``wattwise_agent.backends.emulated``): each forward and backward takes the profile's time and energy at
the clock the GPU's power limit allows. Two runs follow each other. The first opens a Tracker with
``optimize_power_limit``: it tries each power limit for ``--warmup-steps`` + ``--profile-steps`` steps,
keeps the one with the lowest ``eta * energy + (1 - eta) * max_power * time`` per step, and trains
``--keep-steps`` more at it. The second is a baseline at the maximum limit for ``--keep-steps``. Rank 0
prints one JSON line: the optimiser's trials (per step of the job: every GPU), its choice and reported
saving, and the saving measured between the two runs (``realised_saving_pct``).

Without ``--allow-power-limits`` (and ``WATTWISE_ALLOW_CLOCK_CHANGES=1``) the optimiser is a dry run:
nothing is set, every trial runs at the maximum limit. ``--virtual-time``: the emulated GPUs' time moves
only by their computations (each ``--pace`` times its profiled time) and ``--communication-ms`` per step
(the all-reduce and optimizer step, at blocking power), so the figures do not depend on the machine's
load; without it the emulated GPUs really sleep. The runs are recorded locally (run files in
``--out-dir``, or ``~/.wattwise/runs``), to upload with ``wattwise-agent upload``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from wattwise_agent.backends.emulated import EmulatedGpuBackend, EmulationProfile
from wattwise_agent.power_limit import all_ranks_sum
from wattwise_agent.torch_hooks import Tracker


class VirtualTime:
    """The emulated GPUs' time when it moves only by what they compute (``--virtual-time``)."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def timer(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.now_s += max(seconds, 0.0)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, required=True, help="a Perseus profile CSV")
    parser.add_argument("--stage", type=int, default=0, help="the profile's stage each GPU emulates")
    parser.add_argument("--p-blocking", type=float, required=True, help="the GPUs' blocking power, W")
    parser.add_argument("--pace", type=float, default=1.0, help="each computation lasts PACE × its profiled time")
    parser.add_argument("--eta", type=float, default=0.5)
    parser.add_argument("--warmup-steps", type=int, default=1)
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--keep-steps", type=int, default=5, help="steps measured at the kept limit and the baseline")
    parser.add_argument("--communication-ms", type=float, default=10.0, help="with --virtual-time: per step")
    parser.add_argument("--virtual-time", action="store_true")
    parser.add_argument("--allow-power-limits", action="store_true",
                        help="let the optimiser set limits (also needs WATTWISE_ALLOW_CLOCK_CHANGES=1)")
    parser.add_argument("--out-dir", type=Path, default=None, help="where the run files go")
    return parser.parse_args()


class Replica:
    """This process's share of the data-parallel job: its model replica, data shard and emulated GPU."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.time = VirtualTime() if args.virtual_time else None
        timing: dict[str, Any] = {"timer": self.time.timer, "sleep": self.time.sleep} if self.time else {}
        profile = EmulationProfile.from_csv(args.profile.read_text(), p_blocking_w=args.p_blocking, stage=args.stage)
        self.gpu = EmulatedGpuBackend(profile, node="dp-emulated", index=dist.get_rank(), pace=args.pace, **timing)
        self.timer: Callable[[], float] = self.time.timer if self.time else time.monotonic
        torch.manual_seed(0)
        self.model = DistributedDataParallel(
            torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05)
        generator = torch.Generator().manual_seed(1000 + dist.get_rank())
        self.inputs = torch.randn(128, 16, generator=generator)
        self.targets = self.inputs.sum(dim=1, keepdim=True)
        self.losses: list[float] = []

    def step(self, tracker: Tracker, number: int) -> None:
        with tracker.stage("forward"):
            loss = torch.nn.functional.mse_loss(self.model(self.inputs), self.targets)
        with tracker.stage("backward"):
            self.optimizer.zero_grad()
            loss.backward()  # DDP's all-reduce
        self.optimizer.step()
        if self.time is not None:
            self.time.sleep(self.args.communication_ms / 1000)
        self.losses.append(loss.item())
        tracker.step(number)

    def measure(self, tracker: Tracker, first: int, steps: int) -> tuple[float, float]:
        """Time (s, mean over ranks) and energy (J, every GPU) per step over ``steps`` steps."""
        start_s, start_j = self.timer(), self.gpu.energy_j()
        for number in range(first, first + steps):
            self.step(tracker, number)
        time_s, energy_j = self.timer() - start_s, self.gpu.energy_j() - start_j
        total_time_s, total_energy_j = all_ranks_sum([time_s, energy_j])
        return total_time_s / dist.get_world_size() / steps, total_energy_j / steps

    def tracker(self, name: str, **options: Any) -> Tracker:
        out = None
        if self.args.out_dir is not None:
            self.args.out_dir.mkdir(parents=True, exist_ok=True)
            out = self.args.out_dir / f"{name}-rank{dist.get_rank()}.jsonl"
        return Tracker(name, backend=self.gpu, node="dp-emulated", out=out, **options)


def main() -> None:
    args = parse_args()
    dist.init_process_group("gloo")
    replica = Replica(args)
    options = {"eta": args.eta, "warmup_steps": args.warmup_steps, "profile_steps": args.profile_steps,
               "allow_clock_changes": args.allow_power_limits, "timer": replica.timer}
    with replica.tracker("dp-power-limit", optimize_power_limit=options) as tracker:
        optimiser = tracker.power_limit
        assert optimiser is not None
        for number in range(optimiser.planned_steps):
            replica.step(tracker, number)
        kept_s, kept_j = replica.measure(tracker, optimiser.planned_steps, args.keep_steps)
    with replica.tracker("dp-max-limit") as baseline:
        replica.step(baseline, 0)
        max_s, max_j = replica.measure(baseline, 1, args.keep_steps)
    choice = optimiser.choice
    assert choice is not None
    if dist.get_rank() == 0:
        print(json.dumps({
            "ranks": dist.get_world_size(), "eta": choice.eta, "max_power_w": choice.max_power_w,
            "dry_run": choice.dry_run, "chosen_w": choice.limit_w, "max_limit_w": choice.max_limit_w,
            "trials": [{"limit_w": t.limit_w, "steps": t.steps, "time_s": t.time_s, "energy_j": t.energy_j}
                       for t in choice.trials],
            "reported_saving_pct": choice.energy_saving_pct, "reported_time_change_pct": choice.time_change_pct,
            "realised_saving_pct": (max_j - kept_j) / max_j * 100,
            "realised_time_change_pct": (kept_s - max_s) / max_s * 100,
            "first_loss": replica.losses[0], "last_loss": replica.losses[-1],
            "summary": choice.summary(),
        }), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

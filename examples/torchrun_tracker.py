"""A few steps of DDP training, each process tracked by a Wattwise Tracker: run it under torchrun.

    export WATTWISE_URL=https://wattwise.example.org WATTWISE_TOKEN=ww_...
    torchrun --nproc-per-node 4 examples/torchrun_tracker.py --run-name ddp-demo --backend simulated

Every process opens a Tracker with the same run name: all of them stream into that one run, each with its
own stream. Each measures the GPU it drives (``WATTWISE_RANKS=own``, the default), so the run holds every
GPU of the node once; with ``WATTWISE_RANKS=node`` local rank 0 measures them all and the others send
nothing. ``--backend simulated`` needs no GPU: process k reads simulated GPU k of the node.

Trains on CPU over gloo by default; ``--device cuda`` trains on the GPU of each process over NCCL.
``--replay-from 2026-01-01T00:00:00Z`` (simulated backend) reads the simulated GPUs in simulated time that
moves on by ``--step-ms`` per step, from that instant: the same run measures the same interval every
time, for tests and demos. Each process prints its tracker's summary as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from wattwise_agent.cli import parse_time
from wattwise_agent.clock import SteppedClock
from wattwise_agent.replay import epoch_ms
from wattwise_agent.torch_hooks import Tracker


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Not --run or --node: torchrun would take them for its own --run-path and --node-rank.
    parser.add_argument("--run-name", required=True, help="the run every process streams into")
    parser.add_argument("--backend", choices=("nvml", "simulated"), default="nvml")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--node-name", default=None, help="node name (default: host name)")
    parser.add_argument("--seed", type=int, default=0, help="simulated backend: the node's seed")
    parser.add_argument("--rate", type=float, default=10.0, help="readings per second per GPU")
    parser.add_argument("--window", type=float, default=5.0, help="seconds of readings per batch")
    parser.add_argument("--replay-from", type=parse_time, default=None, help="simulated backend: ISO time the replay starts at")
    parser.add_argument("--step-ms", type=int, default=500, help="with --replay-from: simulated ms per step")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    device = torch.device(args.device, local_rank) if args.device == "cuda" else torch.device("cpu")
    torch.manual_seed(0)  # the same initial weights on every process (DDP also broadcasts rank 0's)
    model = DistributedDataParallel(
        torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)).to(device))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(1000 + dist.get_rank())  # each process its own shard
    inputs = torch.randn(256, 16, generator=generator).to(device)
    targets = inputs.sum(dim=1, keepdim=True)

    clock = None
    if args.replay_from:
        clock = SteppedClock(epoch_ms(args.replay_from))
    losses = []
    with Tracker(args.run_name, backend=args.backend, node=args.node_name, seed=args.seed, rate_hz=args.rate,
                 window_s=args.window, clock=clock) as tracker:
        for step in range(args.steps):
            with tracker.stage("forward"):
                loss = torch.nn.functional.mse_loss(model(inputs), targets)
            with tracker.stage("backward"):
                optimizer.zero_grad()
                loss.backward()  # DDP averages the gradients over every process here
            optimizer.step()
            losses.append(loss.item())
            tracker.step(step)
            if clock is not None:
                clock.advance_by(args.step_ms)
    dist.destroy_process_group()
    line = {"rank": int(os.environ.get("RANK", "0")), "local_rank": local_rank, "measuring": tracker.measuring,
            "first_loss": losses[0], "last_loss": losses[-1],
            **(tracker.summary.exit_line() if tracker.summary is not None else {})}
    if tracker.error is not None:
        line["error"] = repr(tracker.error)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

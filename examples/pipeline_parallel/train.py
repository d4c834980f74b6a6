"""Pipeline-parallel training of a small transformer on emulated GPUs, in a 1F1B schedule: run it under torchrun.

    WATTWISE_URL=http://127.0.0.1:8000 WATTWISE_TOKEN=ww_enrol... \\
    python -m torch.distributed.run --standalone --nproc-per-node 2 examples/pipeline_parallel/train.py \\
        --mode baseline --run-name loop-baseline --iterations 8

Every process is one pipeline stage (gloo, CPU) driving one emulated GPU
(``wattwise_agent.backends.emulated``) that takes the time and energy of ``--profile``'s stage at its clock;
``pipeline.py`` explains the virtual time that makes the figures the profile's on any machine. Each run is
measured like any other: a Tracker per rank streams the GPU to the app (``WATTWISE_URL``, ``WATTWISE_TOKEN``)
into one run, with a step marker per iteration. Modes:

``baseline``  every clock at its maximum; every rank reports an ``iteration`` event per iteration (its time and
              its GPU's energy), the figures a plan is compared with.
``profile``   the stage profiler sweeps the clocks (``--allow-clock-changes`` and
              ``WATTWISE_ALLOW_CLOCK_CHANGES=1``) and measures the blocking power; rank 0 gathers every
              stage's rows and uploads ONE profile with the agent's signed upload (``profile_upload``).
``planned``   every rank fetches its plan of frontier ``--frontier`` through the API with ``--api-token``
              and replays it with the plan client (``plan`` and ``iteration`` events); without both opt-ins it
              is a dry run.

Rank 0 prints one JSON line at the end: the mode, iterations, the mean iteration time and the pipeline's
energy per iteration (virtual figures), the loss, and the upload (profile) or plan (planned).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from pipeline import Links, Shape, VirtualTime, batch, one_f_one_b, transformer_stage

from wattwise_agent.backends.emulated import EmulatedGpuBackend, EmulationProfile
from wattwise_agent.profile_upload import ProfileUpload, publish_stage_profile
from wattwise_agent.profiling import StageProfiler
from wattwise_agent.torch_hooks import Tracker
from wattwise_agent.transport import transport_for

try:  # helper h2's API client and plan events (issue 12)
    from wattwise_agent.plan_api import PlanApi
    from wattwise_agent.plan_client import FrequencyPlanClient as PlanClient
    SHIM = False
except ImportError:  # REMOVE AT MERGE with plan_shim.py
    from plan_shim import PlanApi  # type: ignore[assignment]
    from plan_shim import ShimPlanClient as PlanClient  # type: ignore[assignment]
    SHIM = True

HERE = Path(__file__).resolve().parent
Bracket = Callable[[str], contextlib.AbstractContextManager[Any]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("baseline", "profile", "planned"), required=True)
    parser.add_argument("--run-name", dest="run", required=True, help="the run's name in the app")
    parser.add_argument("--node-name", dest="node", default="pipeline-node", help="the node name the Trackers report")
    parser.add_argument("--profile", type=Path, default=HERE / "a100_2_stages.csv",
                        help="the Perseus profile the emulated GPUs follow (one stage per rank)")
    parser.add_argument("--p-blocking", type=float, default=80.0, help="the emulated GPUs' blocking power, W")
    parser.add_argument("--microbatches", type=int, default=6)
    parser.add_argument("--microbatch-size", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=8, help="baseline and planned: iterations to train")
    parser.add_argument("--clock-stride", type=int, default=1,
                        help="profile: sweep every Nth profiled clock (1 = all)")
    parser.add_argument("--communication-ms", type=float, default=0.0,
                        help="virtual time each activation or gradient takes between stages")
    parser.add_argument("--speed", type=float, default=0.0,
                        help="virtual seconds per real second the processes keep to (0: as fast as the CPUs go)")
    parser.add_argument("--allow-clock-changes", action="store_true",
                        help="profile and planned: lock clocks (also needs WATTWISE_ALLOW_CLOCK_CHANGES=1)")
    parser.add_argument("--frontier", type=int, help="planned: the solved frontier to fetch the plan of")
    parser.add_argument("--api-token", default=os.environ.get("WATTWISE_API_TOKEN"),
                        help="planned: an API token (manage.py create_api_token; default $WATTWISE_API_TOKEN)")
    parser.add_argument("--baseline-run", default="", help="planned: the baseline run to compare with")
    parser.add_argument("--profile-name", default="", help="profile: the uploaded profile's name (default: the run)")
    parser.add_argument("--out-dir", type=Path, default=None, help="where the spool and run copies go")
    return parser.parse_args()


class Stage:
    """This process's pipeline stage: its model, emulated GPU, virtual time and links to its neighbours."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rank, self.stages = dist.get_rank(), dist.get_world_size()
        self.clock = VirtualTime(args.speed or None)
        profile = EmulationProfile.from_csv(args.profile.read_text(), p_blocking_w=args.p_blocking, stage=self.rank)
        self.gpu = EmulatedGpuBackend(profile, node=args.node, index=self.rank, pace=1.0,
                                      timer=self.clock.timer, sleep=self.clock.sleep)
        self.model = transformer_stage(self.rank, self.stages)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=3e-3)
        self.links = Links(self.rank, self.stages, self.clock, args.communication_ms / 1000)
        self.shape = Shape(args.microbatch_size)
        self.order = one_f_one_b(self.stages, args.microbatches, self.rank)
        self.losses: list[float] = []
        self.iterations = 0
        self._synchronise()

    def _synchronise(self) -> None:
        self.links.flush()  # every stage starts the first iteration at the same virtual time

    @contextlib.contextmanager
    def on_gpu(self, name: str) -> Iterator[None]:
        """A computation on the emulated GPU (when no profiler or plan client brackets it)."""
        self.gpu.begin_computation(name)
        try:
            yield
        finally:
            self.gpu.end_computation(name)

    def iteration(self, step: int, bracket: Bracket) -> None:
        """One training iteration: this stage's 1F1B computations, then the pipeline's flush and optimizer step."""
        first, last = self.rank == 0, self.rank == self.stages - 1
        tokens = batch(step, self.args.microbatches, self.shape)
        inputs: dict[int, torch.Tensor] = {}
        outputs: dict[int, torch.Tensor] = {}
        for name, mb in self.order:
            if name == "forward":
                if first:
                    x = tokens[mb, :, :-1]
                else:
                    x = self.links.receive(self.shape.activation, source=self.rank - 1, microbatch=mb,
                                           gradient=False).requires_grad_()
                with bracket("forward"):
                    y = self.model(x)
                    if last:
                        y = torch.nn.functional.cross_entropy(y.reshape(-1, y.shape[-1]), tokens[mb, :, 1:].reshape(-1))
                if not last:
                    self.links.send(y, to=self.rank + 1, microbatch=mb, gradient=False)
                inputs[mb], outputs[mb] = x, y
            else:
                y = outputs.pop(mb)
                if last:
                    self.losses.append(float(y.item()))
                    with bracket("backward"):
                        (y / self.args.microbatches).backward()
                else:
                    grad = self.links.receive(self.shape.activation, source=self.rank + 1, microbatch=mb, gradient=True)
                    with bracket("backward"):
                        y.backward(grad)
                x = inputs.pop(mb)
                if not first:
                    self.links.send(x.grad, to=self.rank - 1, microbatch=mb, gradient=True)
        self.links.flush()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.iterations += 1

    def tracker(self) -> Tracker:
        out_dir = self.args.out_dir
        options: dict[str, Any] = {}
        if out_dir is not None:
            options["spool_dir"] = out_dir / f"spool-{self.args.run}-rank{self.rank}"
        return Tracker(self.args.run, backend=self.gpu, node=self.args.node, window_s=2.0, **options)

    def loss(self) -> tuple[float, float] | None:
        """The last stage's mean loss over the first and the last iteration (None elsewhere)."""
        m = self.args.microbatches
        if not self.losses:
            return None
        return sum(self.losses[:m]) / m, sum(self.losses[-m:]) / m


def run_baseline(stage: Stage, tracker: Tracker) -> list[dict[str, Any]]:
    """All-max clocks; an ``iteration`` event per iteration, as the plan client reports them."""
    reported = []
    for step in range(stage.args.iterations):
        start_s, start_j = stage.clock.now_s, stage.gpu.energy_j()
        stage.iteration(step, stage.on_gpu)
        fields = {"rank": stage.rank, "step": step, "time_s": stage.clock.now_s - start_s,
                  "energy_j": stage.gpu.energy_j() - start_j, "wait_s": 0.0}
        mark(tracker, "iteration", fields)
        reported.append(fields)
        tracker.step(step)
    return reported


def run_profile(stage: Stage, tracker: Tracker) -> dict[str, Any]:
    clocks = list(stage.gpu.profile.clocks_mhz)[:: max(1, stage.args.clock_stride)]
    with StageProfiler(stage=stage.rank, backend=stage.gpu, allow_clock_changes=stage.args.allow_clock_changes,
                       freqs_mhz=clocks, warmup_steps=0, measure_steps=1, early_stop_rises=len(clocks) + 1,
                       timer=stage.clock.timer) as profiler:
        profiler.measure_blocking_power(1.0, block=stage.clock.sleep)  # the emulated GPU idles: blocking power
        stage.links.flush()
        for step in range(profiler.planned_steps):  # the same on every rank
            with profiler.step():
                stage.iteration(step, profiler.instruction)
            tracker.step(step)
        result = profiler.result()
    rows = result.to_csv().splitlines()
    gathered: list[Any] = [None] * stage.stages
    dist.gather_object((rows, result.p_blocking_w), gathered if stage.rank == 0 else None, dst=0)
    if stage.rank != 0:
        return {}
    csv_text = "\n".join([rows[0]] + [line for stage_rows, _ in gathered for line in stage_rows[1:]]) + "\n"
    p_blocking_w = sum(p for _, p in gathered) / len(gathered)
    upload = ProfileUpload(name=stage.args.profile_name or stage.args.run, csv_text=csv_text,
                           gpu_name=result.gpu_name, run=stage.args.run, p_blocking_w=round(p_blocking_w, 3))
    url, token = os.environ["WATTWISE_URL"], os.environ["WATTWISE_TOKEN"]
    transport = transport_for(url, None)
    try:
        sent = publish_stage_profile(transport, upload, token=token, node=stage.args.node)
    finally:
        close = getattr(transport, "close", None)
        if close is not None:
            close()
    if not sent.sent:
        raise SystemExit(f"the profile was not delivered (spooled {sent.spooled}, refused {sent.refused})")
    return {"upload": sent.line(), "dry_run": result.dry_run, "clocks_mhz": list(result.frequencies_mhz)}


def run_planned(stage: Stage, tracker: Tracker) -> dict[str, Any]:
    args = stage.args
    if args.frontier is None or not args.api_token:
        raise SystemExit("--mode planned needs --frontier and an API token (--api-token or $WATTWISE_API_TOKEN)")
    api = PlanApi(os.environ["WATTWISE_URL"], args.api_token)
    fetched = api.rank_plan(args.frontier, stage.rank)
    with PlanClient(fetched, rank=stage.rank, backend=stage.gpu, allow_clock_changes=args.allow_clock_changes,
                    on_event=lambda kind, fields: mark(tracker, kind, fields), baseline_run=args.baseline_run,
                    timer=stage.clock.timer, threaded=False) as client:
        for step in range(args.iterations):
            client.on_step_begin()
            stage.iteration(step, client.instruction)
            client.on_step_end()
            tracker.step(step)
        dry_run = client.dry_run
    return {"frontier_id": fetched.frontier_id, "point": fetched.point, "dry_run": dry_run,
            "predicted_time_s": fetched.predicted_time_s, "predicted_energy_j": fetched.predicted_energy_j,
            "baseline_time_s": fetched.baseline_time_s, "baseline_energy_j": fetched.baseline_energy_j,
            "plan_client": "shim" if SHIM else "wattwise_agent"}


def mark(tracker: Tracker, kind: str, fields: dict[str, Any]) -> None:
    assert tracker.streamer is not None
    tracker.streamer.mark(kind, **fields)


def main() -> None:
    args = parse_args()
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    stage = Stage(args)
    start_s, start_j = stage.clock.now_s, stage.gpu.energy_j()
    with stage.tracker() as tracker:
        if args.mode == "baseline":
            run_baseline(stage, tracker)
            extra: dict[str, Any] = {}
        elif args.mode == "profile":
            extra = run_profile(stage, tracker)
        else:
            extra = run_planned(stage, tracker)
    figures = torch.tensor([stage.clock.now_s - start_s, stage.gpu.energy_j() - start_j], dtype=torch.float64)
    dist.all_reduce(figures)
    losses: list[Any] = [None] * stage.stages
    dist.all_gather_object(losses, stage.loss())
    if stage.rank == 0:
        first_loss, last_loss = losses[-1]
        print(json.dumps({
            "mode": args.mode, "run": args.run, "ranks": stage.stages, "microbatches": args.microbatches,
            "iterations": stage.iterations, "virtual_time_s": float(figures[0]) / stage.stages,
            "energy_j": float(figures[1]), "first_loss": first_loss, "last_loss": last_loss, **extra,
        }), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""Pipeline-parallel training of a small transformer on emulated GPUs, in a 1F1B schedule: run it under torchrun.

    WATTWISE_URL=http://127.0.0.1:8000 WATTWISE_TOKEN=ww_enrol... \\
    python -m torch.distributed.run --standalone --nproc-per-node 2 examples/pipeline_parallel/train.py \\
        --mode baseline --run-name loop-baseline --iterations 8

Every process is one pipeline stage (gloo, CPU) driving one emulated GPU
(``wattwise_agent.backends.emulated``) that takes the time and energy of ``--profile``'s stage at its clock;
``pipeline.py`` explains the virtual time that makes the figures the profile's on any machine. Each run is
measured like any other: a Tracker per rank streams the GPU to the app (``WATTWISE_URL``, ``WATTWISE_TOKEN``)
into one run, with a step marker per iteration. Modes:

``baseline``  every clock at its maximum: the plan client without a plan (``plan=None``) brackets the
              computations and reports an ``iteration`` event per iteration on every rank (its time and its
              GPU's energy), the figures a plan is compared with.
``profile``   the stage profiler sweeps the clocks (``--allow-clock-changes`` and
              ``WATTWISE_ALLOW_CLOCK_CHANGES=1``) and measures the blocking power; rank 0 gathers every
              stage's rows and uploads ONE profile with the agent's signed upload (``profile_upload``).
``planned``   every rank fetches its plan of frontier ``--frontier`` through the API with ``--api-token``
              (``PlanApi``) and replays it with the plan client (``plan`` and ``iteration`` events); without
              both opt-ins it is a dry run. ``--straggler-s T′ --straggler-from K`` emulates a slower peer
              pipeline from iteration K (the emulated GPU's ``straggler_iteration_s``: every iteration's sync
              waits until T′ has passed since it began); ``--switch`` lets the plan client switch to the plan
              for the straggler (``StragglerSwitcher``), without it the plan fetched first is kept.

The baseline and planned runs go through one code path (``run_measured``): the same plan client brackets
every computation, ends every iteration at its ``sync`` (see ``Stage.iteration``) and reports the events.

Rank 0 prints one JSON line at the end: the mode, iterations, the mean iteration time and the pipeline's
energy per iteration (virtual figures), the loss, and the upload (profile) or the plan (planned); the
baseline and planned runs also give every iteration's figures (``steps``: the slowest rank's time, the
ranks' energy summed) and when each plan came into force on each rank (``plans``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from pipeline import Links, Shape, VirtualTime, batch, transformer_stage

from wattwise_agent.backends.emulated import EmulatedGpuBackend, EmulationProfile
from wattwise_agent.pipeline_order import one_f_one_b
from wattwise_agent.plan_api import FetchedPlan, PlanApi
from wattwise_agent.plan_client import FrequencyPlanClient
from wattwise_agent.plan_switch import StragglerSwitcher
from wattwise_agent.profile_upload import ProfileUpload, publish_stage_profile
from wattwise_agent.profiling import StageProfiler
from wattwise_agent.torch_hooks import Tracker
from wattwise_agent.transport import transport_for

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
    parser.add_argument("--straggler-s", type=float, default=None,
                        help="planned: emulate a slower peer pipeline whose iteration takes this long (T′, seconds)")
    parser.add_argument("--straggler-from", type=int, default=0, help="planned: the first iteration it slows")
    parser.add_argument("--switch", action="store_true",
                        help="planned: switch to the plan for the straggler when the iterations get longer")
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

    def iteration(self, step: int, bracket: Bracket, sync: Callable[[], object] | None = None) -> None:
        """One training iteration: this stage's 1F1B computations, then its end, in this one place: the
        pipeline's flush (the stages agree on the virtual time its last computation ended), ``sync`` (where
        the gradient all-reduce with the other data-parallel pipelines would wait: the plan client's, whose
        emulated GPU waits there for a straggler's T′ since the iteration began), and the optimizer step.

        The two waits agree: every rank begins an iteration at the same virtual time (the last one's agreed
        end), so each ends it at max(the pipeline's latest stage, begin + T′), the Perseus straggler's
        iteration; the flush runs first so the straggler's wait, at blocking power, is the client's
        ``wait_s`` and nothing else is."""
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
                    assert x.grad is not None  # it requires grad: received above
                    self.links.send(x.grad, to=self.rank - 1, microbatch=mb, gradient=True)
        self.links.flush()
        if sync is not None:
            sync()
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


def run_profile(stage: Stage, tracker: Tracker) -> dict[str, Any]:
    clocks = list(stage.gpu.profile.clocks_mhz)[:: max(1, stage.args.clock_stride)]
    with StageProfiler(stage=stage.rank, backend=stage.gpu, allow_clock_changes=stage.args.allow_clock_changes,
                       freqs_mhz=clocks, warmup_steps=0, measure_steps=1, early_stop_rises=len(clocks) + 1,
                       timer=stage.clock.timer) as profiler:
        stage.clock.keep_pace_from_now()
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


def fetch_plan(stage: Stage) -> tuple[FetchedPlan, StragglerSwitcher | None]:
    """This rank's plan of ``--frontier``, through the API with the token, and the switcher (``--switch``)."""
    args = stage.args
    if args.frontier is None or not args.api_token:
        raise SystemExit("--mode planned needs --frontier and an API token (--api-token or $WATTWISE_API_TOKEN)")
    api = PlanApi(os.environ["WATTWISE_URL"], args.api_token)

    def fetch(straggler_time_s: float | None) -> FetchedPlan:
        return api.rank_plan(args.frontier, stage.rank, straggler_time_s=straggler_time_s)

    return fetch(None), (StragglerSwitcher(fetch) if args.switch else None)


def run_measured(stage: Stage, tracker: Tracker) -> dict[str, Any]:
    """The baseline (no plan: every clock at its maximum) or the planned run, through one plan client that
    brackets every computation, ends every iteration at its ``sync`` and reports ``plan`` and ``iteration``
    events into the run (the Tracker) and into the report."""
    args = stage.args
    fetched, switcher = fetch_plan(stage) if args.mode == "planned" else (None, None)
    reported: list[dict[str, Any]] = []

    def on_event(kind: str, fields: dict[str, Any]) -> None:
        tracker.event(kind, fields)
        if kind == "iteration":
            reported.append(fields)

    with FrequencyPlanClient(fetched, rank=stage.rank, backend=stage.gpu, allow_clock_changes=args.allow_clock_changes,
                             on_event=on_event, baseline_run=args.baseline_run, switcher=switcher,
                             timer=stage.clock.timer, threaded=False) as client:
        stage.clock.keep_pace_from_now()
        for step in range(args.iterations):
            if args.straggler_s is not None and step == args.straggler_from:
                stage.gpu.straggler_iteration_s = args.straggler_s  # a peer pipeline slows down from here
            client.on_step_begin()
            stage.iteration(step, client.instruction, client.sync)
            client.on_step_end()
            tracker.step(step)
        dry_run = client.dry_run
        plans = [[first_step, reason, None if f is None else f.point, 0.0 if f is None else f.straggler_time_s or 0.0]
                 for first_step, reason, f in client.plan_history]
    extra: dict[str, Any] = {"steps": gather_steps(stage, reported), "plans": gather(stage, plans)}
    if fetched is not None:
        extra.update(frontier_id=fetched.frontier_id, point=fetched.point, dry_run=dry_run,
                     predicted_time_s=fetched.predicted_time_s, predicted_energy_j=fetched.predicted_energy_j,
                     baseline_time_s=fetched.baseline_time_s, baseline_energy_j=fetched.baseline_energy_j)
    if args.straggler_s is not None:
        extra.update(straggler_s=args.straggler_s, straggler_from=args.straggler_from)
    return extra


def gather(stage: Stage, item: Any) -> list[Any]:
    """Every rank's ``item``, in rank order (all ranks get them)."""
    items: list[Any] = [None] * stage.stages
    dist.all_gather_object(items, item)
    return items


def gather_steps(stage: Stage, reported: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each iteration's figures over the pipeline, from every rank's ``iteration`` events: the slowest rank's
    time, the ranks' energy summed, the longest wait at the sync."""
    by_rank = gather(stage, reported)
    steps = []
    for events in zip(*by_rank, strict=True):  # every rank reports every iteration (report_every=1)
        steps.append({"step": events[0]["step"], "time_s": max(e["time_s"] for e in events),
                      "energy_j": sum(e.get("energy_j", 0.0) for e in events),
                      "wait_s": max(e["wait_s"] for e in events)})
    return steps


def main() -> None:
    args = parse_args()
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    stage = Stage(args)
    start_s, start_j = stage.clock.now_s, stage.gpu.energy_j()
    with stage.tracker() as tracker:
        extra = run_profile(stage, tracker) if args.mode == "profile" else run_measured(stage, tracker)
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


def exit_now() -> None:
    """Leave without C++ static destructors: with the CPU build of torch 2.13 a rank sometimes aborted at
    interpreter exit, after all its work ("terminate called without an active exception": a thread of
    torch's still joinable in a destructor), which fails a finished run. Exit handlers still run (the
    clock guards' resets, logging)."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
    exit_now()

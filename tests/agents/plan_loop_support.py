"""What the plan-fetching tests share: a one-stage frontier of the emulation's profile, solved in the app's
database, and an emulated training loop on virtual time. The app is imported inside the functions only."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from tests.agents.emulation_support import P_BLOCKING_W, PROFILE_CSV, VirtualTime
from wattwise_agent.backends.emulated import EmulatedGpuBackend, EmulationProfile
from wattwise_agent.plan_client import FrequencyPlanClient

MICROBATCHES = 4
ORDER = ["forward", "backward"] * MICROBATCHES  # 1F1B of a one-stage pipeline


def one_stage_csv() -> bytes:
    """Stage 0 of the emulation's profile, alone: a pipeline of one stage, planned and emulated alike."""
    rows = [r for r in csv.DictReader(io.StringIO(PROFILE_CSV)) if r["stage"] == "0"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


@dataclass
class Planned:
    frontier_id: int
    token: str
    other_token: str  # a user of another project


def solved_frontier(*, solve: bool = True) -> tuple[Planned, Any]:
    """Ana's project with the one-stage profile and its frontier (solved unless told), Bob elsewhere."""
    from dashboard.projects.models import Project
    from dashboard.projects.tokens import issue_token
    from planner.plans import planning, profiles
    from planner.plans.models import FrontierJob
    from tests.factories import member

    ana, bob = member("ana", "vision"), member("bob", "speech")
    stored = profiles.store_upload(Project.objects.get(name="vision"), one_stage_csv(), name="one-stage")
    params = planning.Parameters(num_microbatches=MICROBATCHES, unit_time_s=0.001, p_blocking_w=P_BLOCKING_W)
    profile = stored.profile
    job = FrontierJob.objects.create(
        profile=profile, cache_key=planning.cache_key(profile.digest, params.problem(profile.num_stages)),
        num_stages=profile.num_stages, num_microbatches=params.num_microbatches, unit_time_s=params.unit_time_s,
        p_blocking_w=params.p_blocking_w, schedule=params.schedule, mode=params.mode,
    )
    if solve:
        planning.solve_job(job.pk)
        job.refresh_from_db()
        assert job.status == FrontierJob.Status.DONE, job.error
    return Planned(job.pk, issue_token(ana), issue_token(bob)), job


def emulated_stage(time: VirtualTime) -> EmulatedGpuBackend:
    """The emulated GPU of stage 0; each computation lasts exactly its profiled time (pace 1)."""
    profile = EmulationProfile.from_csv(one_stage_csv(), p_blocking_w=P_BLOCKING_W)
    return EmulatedGpuBackend(profile, timer=time.timer, sleep=time.sleep, pace=1.0)


def train(client: FrequencyPlanClient, steps: int, gpu: EmulatedGpuBackend | None = None,
          straggler_from: int | None = None, straggler_s: float | None = None) -> None:
    """``steps`` iterations of the one-stage pipeline; a peer pipeline of ``straggler_s`` from ``straggler_from``."""
    for step in range(steps):
        if gpu is not None and straggler_from is not None and step == straggler_from:
            gpu.straggler_iteration_s = straggler_s
        with client.step():
            for name in ORDER:
                with client.instruction(name):
                    pass
            client.sync()

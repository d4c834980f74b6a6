"""The planner's part of the demo: the shipped GPT-3 175B sample profile with one solved frontier.

``seed_planner_demo(project)`` stores the sample in ``project`` and solves its frontier for the
Perseus artifact's case (8 stages × 12 microbatches, synchronous 1F1B, τ = 1 ms, P_blocking = 83.64 W,
default mode) in-process, without a broker: about half a second. Calling it again changes nothing.
"""

from __future__ import annotations

from dashboard.projects.models import Project, Visitor, signed_in
from planner.plans import planning, profiles
from planner.plans.models import FrontierJob

DEMO_PARAMETERS = planning.Parameters(
    num_microbatches=12, unit_time_s=0.001, p_blocking_w=profiles.DEFAULT_P_BLOCKING_W,
    schedule=FrontierJob.Schedule.ONE_F_ONE_B, mode=FrontierJob.Mode.DEFAULT,
)


def seed_planner_demo(project: Project, user: Visitor | None = None) -> FrontierJob:
    """Store the sample profile in ``project`` and solve its 8×12 frontier; return the solved job.

    Idempotent: the profile is stored once per project and the frontier solved once.
    """
    stored = profiles.store_sample(project, user)
    problem = DEMO_PARAMETERS.problem(stored.profile.num_stages)
    key = planning.cache_key(stored.profile.digest, problem)
    job, _ = FrontierJob.objects.get_or_create(
        profile=stored.profile, cache_key=key,
        defaults=dict(
            num_stages=stored.profile.num_stages, num_microbatches=DEMO_PARAMETERS.num_microbatches,
            unit_time_s=DEMO_PARAMETERS.unit_time_s, p_blocking_w=DEMO_PARAMETERS.p_blocking_w,
            schedule=DEMO_PARAMETERS.schedule, mode=DEMO_PARAMETERS.mode,
            requested_by=signed_in(user),
        ),
    )
    if job.status != FrontierJob.Status.DONE:
        if job.status == FrontierJob.Status.FAILED:
            FrontierJob.objects.filter(pk=job.pk).update(status=FrontierJob.Status.QUEUED, error="")
        planning.solve_job(job.pk)  # in-process: the demo must not depend on a worker
    job.refresh_from_db()
    return job

"""Planning requests as plain functions: ask for a frontier (cached), solve one, read one back.

:func:`request_frontier` finds or creates the ``FrontierJob`` for a profile and parameters and, when it
needs solving, enqueues :func:`planner.plans.tasks.solve_frontier` once the transaction commits. The task
calls :func:`solve_job`, which is idempotent: a job already solved is left alone, a result solved for
the same cache key elsewhere is copied, and otherwise the frontier is solved with progress written to
the job row (about twice a second), then stored with the realised figures of every point. Bad input
(``PlannerError``) and unexpected failures both end as ``failed`` with the message on the job, so the
page can show it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property, partial
from typing import Any

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from dashboard.projects.models import Visitor, signed_in
from planner import perseus
from planner.plans.models import FrontierJob, StageProfile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parameters:
    """What to plan besides the profile (the stage count comes from the profile)."""

    num_microbatches: int
    unit_time_s: float
    p_blocking_w: float
    schedule: str = FrontierJob.Schedule.ONE_F_ONE_B
    mode: str = FrontierJob.Mode.DEFAULT

    def problem(self, num_stages: int) -> perseus.PlanningProblem:
        return perseus.PlanningProblem(
            num_stages=num_stages,
            num_microbatches=self.num_microbatches,
            unit_time_s=self.unit_time_s,
            p_blocking_w=self.p_blocking_w,
            schedule=perseus.Schedule(self.schedule),
            mode=perseus.Mode(self.mode),
        )

    @classmethod
    def of(cls, job: FrontierJob) -> Parameters:
        return cls(job.num_microbatches, job.unit_time_s, job.p_blocking_w, job.schedule, job.mode)


def cache_key(profile_digest: str, problem: perseus.PlanningProblem) -> str:
    """SHA-256 over the profile's content digest and the canonical problem: equal keys, equal frontiers."""
    canonical = json.dumps({"profile": profile_digest, "problem": problem.to_dict()}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_problem(profile: perseus.Profile, problem: perseus.PlanningProblem) -> None:
    """The planner's own checks of a problem against a profile (cheap; raises ``PlannerError``)."""
    from planner.perseus.planner import validate_problem

    validate_problem(profile, problem)


def _send(job_id: int) -> None:
    from planner.plans import tasks

    tasks.solve_frontier.delay(job_id)


def enqueue(job_id: int) -> None:
    """Queue the solve once the current transaction commits (in-process when no broker is set)."""
    transaction.on_commit(partial(_send, job_id))


STALE_AFTER = timedelta(minutes=10)
"""A job queued or solving with no progress for this long is queued again when asked for again."""


def is_stale(job: FrontierJob) -> bool:
    waiting = job.status in (FrontierJob.Status.QUEUED, FrontierJob.Status.RUNNING)
    return waiting and job.updated_at < timezone.now() - STALE_AFTER


def request_frontier(
    profile: StageProfile, params: Parameters, user: Visitor | None = None
) -> tuple[FrontierJob, bool]:
    """The job for these parameters, queued for solving if needed; returns ``(job, queued)``.

    A request already solved, queued or being solved is returned as it is (never solved twice); a
    failed one is queued again, and so is one queued or solving with no news for :data:`STALE_AFTER`
    (its message was lost, or its worker died without the broker redelivering it).
    """
    problem = params.problem(profile.num_stages)
    key = cache_key(profile.digest, problem)
    requested_by = signed_in(user)
    with transaction.atomic():
        jobs = FrontierJob.objects.select_for_update().defer("frontier_data", "realised_data")
        job = jobs.filter(profile=profile, cache_key=key).first()
        if job is None:
            try:
                with transaction.atomic():
                    job = FrontierJob.objects.create(
                        profile=profile, cache_key=key, num_stages=profile.num_stages,
                        num_microbatches=params.num_microbatches, unit_time_s=params.unit_time_s,
                        p_blocking_w=params.p_blocking_w, schedule=params.schedule, mode=params.mode,
                        requested_by=requested_by,
                    )
            except IntegrityError:  # a concurrent request created it: use theirs
                return FrontierJob.objects.get(profile=profile, cache_key=key), False
        elif job.status == FrontierJob.Status.FAILED or (job.status != FrontierJob.Status.DONE and is_stale(job)):
            FrontierJob.objects.filter(pk=job.pk).update(
                status=FrontierJob.Status.QUEUED, error="", progress_done=0, progress_total=0,
                started_at=None, finished_at=None, updated_at=timezone.now(),
            )
            job.refresh_from_db()
        else:
            return job, False
        enqueue(job.pk)
        return job, True


# --- solving -----------------------------------------------------------------------------------------


def _realised_bytes(times_s: np.ndarray, energies_j: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, time_s=np.asarray(times_s, dtype=np.float64), energy_j=np.asarray(energies_j, dtype=np.float64))
    return buf.getvalue()


def read_realised(data: bytes | memoryview) -> tuple[np.ndarray, np.ndarray]:
    with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as z:
        return z["time_s"], z["energy_j"]


def _point(frontier: perseus.Frontier, realised: tuple[np.ndarray, np.ndarray], k: int) -> dict[str, float | int]:
    return {
        "index": int(k),
        "planned_time_s": float(frontier.time_s[k]),
        "planned_energy_j": float(frontier.energy_j[k]),
        "realised_time_s": float(realised[0][k]),
        "realised_energy_j": float(realised[1][k]),
    }


def summarise(frontier: perseus.Frontier, profile: perseus.Profile, realised: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Plain figures of a solved frontier, stored on the job for lists and cards."""
    baseline = perseus.evaluate_all_max(profile, frontier.dag, frontier.problem.p_blocking_w)
    choice = perseus.choose_for_straggler(frontier, profile, None, realised=realised)
    return {
        "points": len(frontier),
        "baseline": {"time_s": baseline.time_s, "energy_j": baseline.energy_j},
        "slowest": _point(frontier, realised, 0),
        "fastest": _point(frontier, realised, len(frontier) - 1),
        "least_energy": _point(frontier, realised, int(np.argmin(realised[1]))),
        "intrinsic": choice.summary(),
    }


ProgressHook = Callable[[int, int], None]


class SolveCancelled(Exception):
    """The job left the running state while it was being solved (deleted, or taken over)."""


def _progress_writer(job_id: int) -> ProgressHook:
    def write(done: int, total: int) -> None:
        updated = FrontierJob.objects.filter(pk=job_id, status=FrontierJob.Status.RUNNING).update(
            progress_done=done, progress_total=total, updated_at=timezone.now()
        )
        if not updated:
            raise SolveCancelled(f"frontier job {job_id} is no longer running")

    return write


def _finish(job_id: int, **fields: Any) -> None:
    FrontierJob.objects.filter(pk=job_id).update(finished_at=timezone.now(), updated_at=timezone.now(), **fields)


def solve_job(job_id: int) -> str:
    """Solve (or copy) and store one job's frontier; returns its final status. Never raises for bad input."""
    claimed = FrontierJob.objects.filter(pk=job_id, status__in=[FrontierJob.Status.QUEUED, FrontierJob.Status.RUNNING]).update(
        status=FrontierJob.Status.RUNNING, started_at=timezone.now(), updated_at=timezone.now(), error=""
    )
    job = FrontierJob.objects.select_related("profile").defer("frontier_data", "realised_data").filter(pk=job_id).first()
    if job is None:
        return "gone"
    if not claimed:
        return job.status  # already done or failed: nothing to do (a repeated delivery)
    try:
        if _copy_cached(job):
            return FrontierJob.Status.DONE
        profile = perseus.parse_profile(job.profile.csv_text)
        problem = Parameters.of(job).problem(job.profile.num_stages)
        frontier = perseus.solve_frontier(profile, problem, progress=_progress_writer(job.pk))
        realised = perseus.realised_frontier(frontier, profile)
        fields = dict(
            status=FrontierJob.Status.DONE, frontier_data=frontier.to_bytes(), realised_data=_realised_bytes(*realised),
            num_points=len(frontier), stop_reason=frontier.stop_reason[:300], solve_time_s=frontier.solve_time_s,
            summary=summarise(frontier, profile, realised), progress_done=frontier.max_quant_time - frontier.min_quant_time,
            progress_total=frontier.max_quant_time - frontier.min_quant_time, error="",
        )
        if not FrontierJob.objects.filter(pk=job.pk, status=FrontierJob.Status.RUNNING).exists():
            return "gone"
        _finish(job.pk, **fields)
        return FrontierJob.Status.DONE
    except SolveCancelled:
        return "gone"
    except perseus.PlannerError as exc:
        _finish(job.pk, status=FrontierJob.Status.FAILED, error=str(exc))
        return FrontierJob.Status.FAILED
    except Exception as exc:  # the page must say something went wrong, whatever it was
        log.exception("solving frontier job %s failed", job_id)
        _finish(job.pk, status=FrontierJob.Status.FAILED, error=f"internal error while solving: {type(exc).__name__}: {exc}")
        return FrontierJob.Status.FAILED


def _copy_cached(job: FrontierJob) -> bool:
    """Copy a frontier already solved for the same cache key (e.g. the same profile in another project)."""
    source = (
        FrontierJob.objects.filter(cache_key=job.cache_key, status=FrontierJob.Status.DONE)
        .filter(~Q(pk=job.pk))
        .only("pk", "frontier_data", "realised_data", "num_points", "stop_reason", "solve_time_s", "summary",
              "progress_done", "progress_total")
        .first()
    )
    if source is None or source.frontier_data is None or source.realised_data is None:
        return False
    _finish(
        job.pk, status=FrontierJob.Status.DONE, frontier_data=bytes(source.frontier_data),
        realised_data=bytes(source.realised_data), num_points=source.num_points, stop_reason=source.stop_reason,
        solve_time_s=source.solve_time_s, summary=source.summary, progress_done=source.progress_done,
        progress_total=source.progress_total, copied_from_id=source.pk, error="",
    )
    return True


# --- reading a solved job back -------------------------------------------------------------------------


@dataclass
class Solved:
    """A solved job's frontier, profile and realised figures, read back from the database."""

    job: FrontierJob
    frontier: perseus.Frontier
    profile: perseus.Profile
    realised: tuple[np.ndarray, np.ndarray]

    @cached_property
    def baseline(self) -> perseus.Evaluation:
        return perseus.evaluate_all_max(self.profile, self.frontier.dag, self.frontier.problem.p_blocking_w)


def load(job: FrontierJob) -> Solved:
    """Read a solved job (status ``done``). Raises ``perseus.PlannerError`` if the stored data is unusable."""
    if job.status != FrontierJob.Status.DONE or job.frontier_data is None or job.realised_data is None:
        raise perseus.PlannerError("this frontier has not been solved")
    frontier = perseus.Frontier.from_bytes(bytes(job.frontier_data))
    profile = perseus.parse_profile(job.profile.csv_text)
    if frontier.profile_digest and frontier.profile_digest != profile.digest():
        raise perseus.FrontierFormatError("the stored frontier was solved for another profile")
    return Solved(job, frontier, profile, read_realised(job.realised_data))

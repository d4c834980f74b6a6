"""Celery tasks of the carbon app: ids in, the work in plain functions (idempotent, safe to repeat).

These are the only code that writes a run's figures (pages read them; see :mod:`planner.carbon.figures`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from dashboard.telemetry.models import Run
from planner.carbon import accounting, live
from planner.carbon.models import RunCarbon

log = logging.getLogger(__name__)

STALE_BATCH = 200


@shared_task(name="carbon.recompute_run")
def recompute_run(run_id: int, if_behind: bool = False) -> dict[str, Any]:
    """Recompute and store one run's emissions (a run that was deleted meanwhile is skipped).

    ``if_behind``: leave figures that are current (not stale, covering the run's energy now) alone; the
    recomputes queued while a run streams pass it, so a duplicate costs one query.
    """
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return {"run": run_id, "status": "gone"}
    stored = accounting.store_run_carbon(run, if_behind=if_behind)
    return {"run": run_id, "status": "stored" if stored else "no energy"}


def _missing_run_ids(limit: int) -> list[int]:
    """Runs with energy but no stored figures (their queued recompute was lost, or they predate it)."""
    return list(
        Run.objects.filter(carbon__isnull=True, run_gpus__energy_j__gt=0)
        .values_list("pk", flat=True)
        .distinct()
        .order_by("pk")[:limit]
    )


@shared_task(name="carbon.recompute_stale")
def recompute_stale() -> dict[str, Any]:
    """Recompute runs whose stored figures were flagged stale, then runs with energy but no figures
    (beat; also queued after changes)."""
    run_ids = list(RunCarbon.objects.filter(stale=True).values_list("run_id", flat=True)[:STALE_BATCH])
    run_ids += _missing_run_ids(STALE_BATCH - len(run_ids))
    for run_id in run_ids:
        recompute_run.run(run_id)
    return {"recomputed": len(run_ids)}


@shared_task(name="carbon.import_job")
def import_job(job_id: int) -> dict[str, Any]:
    """Import an uploaded file in the background, streaming it (see planner.carbon.import_jobs)."""
    from planner.carbon import import_jobs

    return import_jobs.run_job(job_id)


@shared_task(name="carbon.poll_providers")
def poll_providers() -> dict[str, Any]:
    """Poll the live providers for the zones in use; never raises (see planner.carbon.live)."""
    report = live.poll()
    return {"stored": report.stored, "errors": report.errors, "unanswered": report.unanswered}

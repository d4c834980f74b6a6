"""Keeping stored run figures in step with their inputs: mark what an event affects, queue a recompute.

Tasks are queued with ``transaction.on_commit`` (the worker must see the committed change) and
``robust=True``: a broker that is down is logged, never raised into the request or the ingest path
that triggered it. Stale figures are recomputed by the periodic task or when a page next shows them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction

from planner.carbon.models import RunCarbon

log = logging.getLogger(__name__)


def mark_stale_for_intensity(zones: Iterable[str], first_utc: datetime, last_utc: datetime) -> list[int]:
    """Flag runs with hours in ``zones`` between ``first_utc`` and ``last_utc`` (coarse rows cover a
    period after their start: the span reaches a year past ``last_utc``); return their run ids."""
    run_ids = list(
        RunCarbon.objects.filter(
            nodes__zone__in=list(zones),
            nodes__hours__hour_utc__gte=first_utc,
            nodes__hours__hour_utc__lt=last_utc + timedelta(days=366),
        )
        .values_list("run_id", flat=True)
        .distinct()
    )
    RunCarbon.objects.filter(run_id__in=run_ids).update(stale=True)
    return run_ids


def mark_stale_for_project(project_id: int) -> list[int]:
    """Flag every stored run of a project (its sites, defaults or instruments changed)."""
    run_ids = list(RunCarbon.objects.filter(run__project_id=project_id).values_list("run_id", flat=True))
    RunCarbon.objects.filter(run_id__in=run_ids).update(stale=True)
    return run_ids


def _send(task_name: str, *args: object) -> None:
    from planner.carbon import tasks

    task = getattr(tasks, task_name)
    try:
        task.delay(*args)
    except Exception:  # the broker is down: the periodic task or the next page view catches up
        log.warning("could not queue carbon.%s%r; stale figures will be recomputed later", task_name, args)


def queue_recompute(run_ids: Iterable[int]) -> None:
    """Recompute these runs after the current transaction commits."""
    for run_id in sorted(set(run_ids)):
        transaction.on_commit(lambda run_id=run_id: _send("recompute_run", run_id), robust=True)


def queue_recompute_stale() -> None:
    transaction.on_commit(lambda: _send("recompute_stale"), robust=True)

"""Keeping stored run figures in step with their inputs: mark what an event affects, queue a recompute.

Every figure a page shows was computed by a task (``carbon.recompute_run``); pages only read. Tasks are
queued when an input changes:

* samples are stored for a run: :func:`samples_stored`, at most one recompute per run per
  ``WATTWISE_CARBON_RECOMPUTE_S`` while it streams;
* a run closes: at once;
* intensity is imported or polled, a site, node assignment, default or contract changes: the affected
  figures are flagged stale and recomputed (``carbon.recompute_stale`` also catches up every 15 minutes
  on anything a broker outage lost, and on runs with energy but no figures).

Tasks are queued with ``transaction.on_commit`` (the worker must see the committed change) and
``robust=True``; a broker that is down is logged, never raised into the request or the ingest path
that triggered it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import current_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dashboard.telemetry import ingest_memo
from planner.carbon.models import RecomputeClaim, RunCarbon

log = logging.getLogger(__name__)


def mark_stale_for_intensity(
    zones: Iterable[str], first_utc: datetime, last_utc: datetime, *, project_id: int | None = None
) -> list[int]:
    """Flag runs with hours in ``zones`` between ``first_utc`` and ``last_utc`` (coarse rows cover a
    period after their start: the span reaches a year past ``last_utc``); return their run ids.

    Shared data (``project_id`` None) may change any project's runs; a project's own only its runs.
    """
    runs = RunCarbon.objects.all() if project_id is None else RunCarbon.objects.filter(run__project_id=project_id)
    run_ids = list(
        runs.filter(
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


def _send(task_name: str, *args: object, **options: Any) -> None:
    from planner.carbon import tasks

    task = getattr(tasks, task_name)
    try:
        task.apply_async(args, **options)
    except Exception:  # the broker is down (or, eager, the task failed): the periodic task catches up
        log.warning("could not queue carbon.%s%r; the figures will be recomputed later", task_name, args, exc_info=True)


def queue_recompute(run_ids: Iterable[int]) -> None:
    """Recompute these runs after the current transaction commits."""
    for run_id in sorted(set(run_ids)):
        transaction.on_commit(partial(_send, "recompute_run", run_id), robust=True)


def queue_recompute_stale() -> None:
    transaction.on_commit(lambda: _send("recompute_stale"), robust=True)


# --- while a run streams: at most one recompute per interval ---------------------------------------------
#
# The first batch after the interval claims the run (a RecomputeClaim row: the database is what every
# ingest process shares) and queues ``carbon.recompute_run`` to run one interval later, so that it covers
# every batch stored meanwhile. With eager tasks (no broker) the recompute runs at once instead, in the
# process that stored the batch; the batches after it are covered by the first batch after the interval,
# or by the close. Either way a streaming run's figures follow its energy within about one interval.


def clock() -> datetime:
    """Now (tests move it instead of sleeping)."""
    return timezone.now()


@dataclass
class ClaimMemo:
    """Until when each run is claimed, as one Celery worker process remembers it: the batches inside the
    interval then cost a dictionary lookup, no query.

    Lifetime: like ``dashboard.telemetry.ingest_memo``'s, one per Celery worker process (or coalescing consumer),
    made when a task the worker runs (not eagerly), or the consumer, first stores samples, and living as long as
    the process. Web
    processes, eager tasks and direct calls have none: every batch asks the database (one conditional
    UPDATE).
    """

    max_runs: int = 10_000
    until: dict[int, datetime] = field(default_factory=dict)  # run id -> end of its claim

    def remember(self, run_id: int, until: datetime, now: datetime) -> None:
        if len(self.until) >= self.max_runs:
            self.until = {k: v for k, v in self.until.items() if v > now}
        self.until[run_id] = until


_memo: ClaimMemo | None = None


def _worker_memo() -> ClaimMemo | None:
    """This worker process's memo while a worker runs the current task (made on first use), else None."""
    global _memo
    task = current_task  # a proxy: false outside a task
    in_task = bool(task) and not (task.request.is_eager or task.request.called_directly)
    if not in_task and not ingest_memo.in_worker():  # the coalescing consumer runs no Celery task
        return None
    if _memo is None:
        _memo = ClaimMemo()
    return _memo


def samples_stored(run_id: int) -> bool:
    """Samples of ``run_id`` were stored: queue its recompute unless one was queued within
    ``WATTWISE_CARBON_RECOMPUTE_S``; True if this call queued it."""
    now, memo = clock(), _worker_memo()
    if memo is not None:
        until = memo.until.get(run_id)
        if until is not None and now < until:
            return False
    interval = timedelta(seconds=settings.WATTWISE_CARBON_RECOMPUTE_S)
    claimed, queued_at = _claim(run_id, now, interval)
    if memo is not None:
        memo.remember(run_id, queued_at + interval, now)
    if claimed:
        _send("recompute_run", run_id, kwargs={"if_behind": True}, countdown=interval.total_seconds())
    return claimed


def _claim(run_id: int, now: datetime, interval: timedelta) -> tuple[bool, datetime]:
    """Claim the run at ``now`` if its last claim is at least ``interval`` old; return whether this call
    claimed it and the claim in force."""
    if RecomputeClaim.objects.filter(run_id=run_id, queued_at__lte=now - interval).update(queued_at=now):
        return True, now
    claim, created = RecomputeClaim.objects.get_or_create(run_id=run_id, defaults={"queued_at": now})
    return created, claim.queued_at

"""Whether a run's agents are still there: a running run none of whose agents has sent anything for
``WATTWISE_SILENT_AFTER_S`` is interrupted (an agent killed or a node lost never sends ``close_run``); a batch
that arrives later makes it running again.

"Sent" is what the server received, by its own clock (``BatchReceipt.received_at``, else when the run was
created), never the agents' sample times, which may be anywhere (a replayed or simulated run).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from dashboard.telemetry.models import BatchReceipt, Run

log = logging.getLogger(__name__)


def mark_silent_runs(now: datetime | None = None) -> int:
    """Mark interrupted every running run silent for ``WATTWISE_SILENT_AFTER_S``; how many were."""
    since = (now or timezone.now()) - timedelta(seconds=settings.WATTWISE_SILENT_AFTER_S)
    heard_since = BatchReceipt.objects.filter(run=OuterRef("pk"), received_at__gte=since)
    # One statement: a batch committed after it started is not overruled (resume() runs after that commit).
    marked = (
        Run.objects.filter(status=Run.Status.RUNNING, created_at__lt=since)
        .exclude(Exists(heard_since))
        .update(status=Run.Status.INTERRUPTED)
    )
    if marked:
        log.warning("%d run(s) marked interrupted: no agent sent anything for %g s", marked,
                    settings.WATTWISE_SILENT_AFTER_S)
    return marked


def resume(run_ids: Iterable[int]) -> None:
    """Batches of these runs were stored: those that were interrupted have their agents back. One statement
    however many runs a group of batches held."""
    ids = sorted(set(run_ids))
    if ids:
        Run.objects.filter(pk__in=ids, status=Run.Status.INTERRUPTED).update(status=Run.Status.RUNNING)

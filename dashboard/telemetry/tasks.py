"""Celery tasks for agent messages: thin wrappers over dashboard.telemetry.ingest, named as agents publish them.

A task a worker runs hands ingest the worker process's memo (``dashboard.telemetry.ingest_memo`` says
what it remembers and how long); a task run eagerly, in a web process or a test, hands none.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from dashboard.telemetry import ingest, ingest_memo
from wattwise_agent.wire import TASK_CLOSE_RUN, TASK_INGEST_BATCH, TASK_OPEN_RUN


def _memo(task: Task) -> ingest_memo.IngestMemo | None:
    """The worker process's memo when a worker runs the task; None when it is applied eagerly or called."""
    in_worker = not (task.request.called_directly or task.request.is_eager)
    return ingest_memo.for_this_worker() if in_worker else None


@shared_task(name=TASK_INGEST_BATCH, bind=True)
def ingest_batch(self: Task, envelope: Any) -> dict[str, Any]:
    return ingest.ingest_batch(envelope, _memo(self)).as_dict()


@shared_task(name=TASK_OPEN_RUN, bind=True)
def open_run(self: Task, envelope: Any) -> dict[str, Any]:
    return ingest.open_run(envelope, _memo(self)).as_dict()


@shared_task(name=TASK_CLOSE_RUN, bind=True)
def close_run(self: Task, envelope: Any) -> dict[str, Any]:
    return ingest.close_run(envelope, _memo(self)).as_dict()

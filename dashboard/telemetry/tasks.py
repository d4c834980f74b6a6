"""Celery tasks for agent messages: thin wrappers over dashboard.telemetry.ingest, named as agents publish them.

A task a worker runs goes through ``dashboard.telemetry.delivery`` (database retries, dead letters) and hands
ingest the worker process's memo (``dashboard.telemetry.ingest_memo`` says what it remembers and how long);
a task run eagerly, in a web process or a test, is a plain call with no memo.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from dashboard.telemetry import compaction, delivery, liveness, retention
from wattwise_agent.wire import TASK_CLOSE_RUN, TASK_INGEST_BATCH, TASK_OPEN_RUN


@shared_task(name=TASK_INGEST_BATCH, bind=True)
def ingest_batch(self: Task, envelope: Any) -> dict[str, Any]:
    return delivery.run_task(self, TASK_INGEST_BATCH, envelope)


@shared_task(name=TASK_OPEN_RUN, bind=True)
def open_run(self: Task, envelope: Any) -> dict[str, Any]:
    return delivery.run_task(self, TASK_OPEN_RUN, envelope)


@shared_task(name=TASK_CLOSE_RUN, bind=True)
def close_run(self: Task, envelope: Any) -> dict[str, Any]:
    return delivery.run_task(self, TASK_CLOSE_RUN, envelope)


@shared_task(name="telemetry.mark_silent_runs")
def mark_silent_runs() -> int:
    """Beat: runs whose agents went silent for WATTWISE_SILENT_AFTER_S are marked interrupted."""
    return liveness.mark_silent_runs()


@shared_task(name="telemetry.maintain_partitions")
def maintain_partitions() -> dict[str, Any]:
    """Beat (hourly): next weeks' partitions of raw windows and receipts made, expired ones dropped."""
    return retention.maintain().as_json()


@shared_task(name="telemetry.compact_windows")
def compact_windows() -> dict[str, Any]:
    """Beat (every 10 minutes): windows of chunks closed WATTWISE_COMPACT_AFTER_S ago compacted."""
    return compaction.compact_closed().as_json()

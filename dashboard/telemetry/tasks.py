"""Celery tasks for agent messages: thin wrappers over dashboard.telemetry.ingest, named as agents publish them."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from agents.wire import TASK_CLOSE_RUN, TASK_INGEST_BATCH, TASK_OPEN_RUN
from dashboard.telemetry import ingest


@shared_task(name=TASK_INGEST_BATCH)
def ingest_batch(envelope: Any) -> dict[str, Any]:
    return ingest.ingest_batch(envelope).as_dict()


@shared_task(name=TASK_OPEN_RUN)
def open_run(envelope: Any) -> dict[str, Any]:
    return ingest.open_run(envelope).as_dict()


@shared_task(name=TASK_CLOSE_RUN)
def close_run(envelope: Any) -> dict[str, Any]:
    return ingest.close_run(envelope).as_dict()

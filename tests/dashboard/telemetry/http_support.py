"""Helpers for the HTTP ingest tests: posting envelopes, and pointing the app's Celery at a real broker."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import current_app

from dashboard.telemetry.models import BatchReceipt, Rejection, Run, RunGpu, RunNode, SampleWindow

INGEST = "/api/ingest"


def post(client: Any, body: Any, *, compress: bool = False, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> Any:
    """POST ``body`` (bytes as given, anything else as JSON) to the ingest endpoint."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    extra = dict(headers or {})
    if compress:
        data = gzip.compress(data)
        extra["Content-Encoding"] = "gzip"
    return client.post(INGEST, data=data, content_type=content_type, headers=extra)


def nothing_stored() -> bool:
    return not (Run.objects.exists() or RunNode.objects.exists() or RunGpu.objects.exists()
                or SampleWindow.objects.exists() or BatchReceipt.objects.exists())


def reasons() -> list[str]:
    return list(Rejection.objects.order_by("id").values_list("reason", flat=True))


@contextmanager
def celery_on_broker(url: str) -> Iterator[Any]:
    """The app's Celery publishes to ``url`` (no worker: messages wait there) instead of running eagerly.

    Its connection pools are set aside meanwhile and put back after: kombu keeps pools per broker URL
    for the whole process, so closing one would break every later publish to that URL.
    """
    app = current_app._get_current_object()
    saved = app.conf.broker_url, app.conf.task_always_eager, app._pool, app.amqp._producer_pool
    app.conf.broker_url, app.conf.task_always_eager = url, False
    app._pool = app.amqp._producer_pool = None
    try:
        yield app
    finally:
        app.conf.broker_url, app.conf.task_always_eager, app._pool, app.amqp._producer_pool = saved

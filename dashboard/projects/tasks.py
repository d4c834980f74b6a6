"""Celery tasks of the projects app: ids in, the work in plain functions (:mod:`dashboard.projects.tokens`)."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task

from dashboard.projects import tokens


@shared_task(name="projects.record_token_use")
def record_token_use(token_id: int, used_at: str) -> bool:
    """Record that an API token was used at ``used_at`` (ISO 8601), at most once a minute per token."""
    return tokens.record_use(token_id, datetime.fromisoformat(used_at))

"""Wattwise Django project: settings, the Celery app, and the runs app (models, ingest, pages)."""

from dashboard.celery import app as celery_app

__all__ = ["celery_app"]

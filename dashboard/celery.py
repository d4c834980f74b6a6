"""The Celery app, ``dashboard.celery:app``: ``celery -A dashboard worker -Q celery,telemetry``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

app = Celery("wattwise")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

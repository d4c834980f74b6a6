"""The Celery app, ``dashboard.celery:app``: ``celery -A dashboard worker`` consumes every queue the app
uses (``CELERY_TASK_QUEUES``: ``celery`` and ``telemetry``); ``-Q telemetry`` narrows a worker to one."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

app = Celery("wattwise")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

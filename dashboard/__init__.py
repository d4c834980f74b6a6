"""The Wattwise Django project: settings, URLs, the REST API host and the Celery app.

The apps live beside it: ``dashboard.projects``, ``dashboard.telemetry``, ``dashboard.runs``,
``dashboard.web`` and ``dashboard.demo`` here, ``planner.plans`` and ``planner.carbon`` in the planner
package (see docs/architecture.md).
"""

from dashboard.celery import app as celery_app

__all__ = ["celery_app"]

"""Wattwise node agent: reads GPU energy and streams it to the app. Imports no Django and no Celery."""

__version__ = "0.1.0"

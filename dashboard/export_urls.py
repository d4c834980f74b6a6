"""Download and scrape routes: CSV/JSON exports and Prometheus /metrics (filled in by the exports work)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []

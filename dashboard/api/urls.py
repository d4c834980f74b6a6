"""REST API routes (filled in by the API work)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []

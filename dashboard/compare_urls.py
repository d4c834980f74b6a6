"""Run comparison: ``/compare/?runs=NAME,NAME,...`` (see docs/compare.md for every parameter)."""

from django.urls import URLPattern, path

from dashboard import compare_views

urlpatterns: list[URLPattern] = [
    path("compare/", compare_views.compare_runs, name="compare"),
]

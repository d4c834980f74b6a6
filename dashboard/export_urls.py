"""Download and scrape routes: CSV exports of runs and samples, and Prometheus ``/metrics``."""

from django.urls import path

from dashboard import export_views

urlpatterns = [
    path("runs.csv", export_views.runs_csv, name="runs_csv"),
    path("runs/<int:pk>/samples.csv", export_views.run_samples_csv, name="run_samples_csv"),
    path("runs/<int:pk>/summary.csv", export_views.run_summary_csv, name="run_summary_csv"),
    path("metrics", export_views.metrics_view, name="metrics"),
]

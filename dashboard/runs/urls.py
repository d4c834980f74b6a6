"""The runs app's routes: runs list, run and GPU pages, compare, the nodes page, CSV exports and Prometheus
``/metrics``."""

from django.urls import path

from dashboard.runs import compare_views, export_views, views

urlpatterns = [
    path("runs/", views.runs_list, name="runs"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/live.json", views.run_live, name="run_live"),
    path("runs/<int:pk>/work", views.run_work, name="run_work"),
    path("runs/<int:pk>/summary.json", views.run_summary_json, name="run_summary"),
    path("runs/<int:pk>/gpus/<int:run_gpu_pk>/", views.gpu_detail, name="run_gpu"),
    path("runs/<int:pk>/gpus/<int:run_gpu_pk>/live.json", views.gpu_live, name="run_gpu_live"),
    # ``/compare/?runs=NAME,NAME,...`` (see docs/compare.md for every parameter)
    path("compare/", compare_views.compare_runs, name="compare"),
    path("nodes/", views.nodes, name="nodes"),
    path("runs.csv", export_views.runs_csv, name="runs_csv"),
    path("runs/<int:pk>/samples.csv", export_views.run_samples_csv, name="run_samples_csv"),
    path("runs/<int:pk>/summary.csv", export_views.run_summary_csv, name="run_summary_csv"),
    path("metrics", export_views.metrics_view, name="metrics"),
]

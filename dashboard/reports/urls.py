"""The reports app's routes: a run's model-card block and a project's period report."""

from django.urls import path

from dashboard.reports import views

urlpatterns = [
    path("runs/<int:pk>/model-card.yaml", views.run_model_card, name="run_model_card"),
    # ``?period=2026-Q4`` (or 2026-11, 2026, custom&from=…&to=…); ``&format=csv`` or ``md`` to download
    path("projects/<int:pk>/report/", views.project_report, name="project_report"),
]

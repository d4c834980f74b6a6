"""Every app's routes, the REST API under ``/api/`` (where ``/api/`` itself leads to the docs page),
the health check, sign-in and the admin."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from dashboard.api import api
from dashboard.web.views import healthz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="runs", permanent=False)),
    path("", include("dashboard.runs.urls")),
    path("", include("dashboard.reports.urls")),
    path("planner/", include("planner.plans.urls")),
    path("projects/", include("dashboard.projects.urls")),
    path("carbon/", include("planner.carbon.urls")),
    path("api/", RedirectView.as_view(url="docs", permanent=False), name="api-index"),
    path("api/", api.urls),
    path("healthz", healthz, name="healthz"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]

"""The REST API under /api/: the operations, /api/openapi.json, and the docs page /api/docs (where
/api/ itself leads)."""

from django.urls import URLPattern, URLResolver, path
from django.views.generic import RedirectView

from dashboard.api.api import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("", RedirectView.as_view(url="docs", permanent=False), name="api-index"),
    path("", api.urls),
]

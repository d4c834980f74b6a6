"""The app's own 404 page, also while DEBUG is on.

With DEBUG on, Django answers an unknown address (and a view's ``Http404``) with its technical page,
which lists every URL pattern; people trying the demo (`make run` runs with DEBUG on) should see the
page they would see in production. ``WATTWISE_TECHNICAL_404=1`` brings the technical page back.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver


class AppNotFoundPage:
    """Answer 404s with the URLconf's ``handler404`` (the ``404.html`` template) instead of the debug page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not settings.DEBUG or settings.WATTWISE_TECHNICAL_404:
            raise MiddlewareNotUsed  # without DEBUG, Django already renders handler404
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
        except Resolver404 as exc:
            return self._not_found(request, exc)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return self._not_found(request, exception) if isinstance(exception, Http404) else None

    @staticmethod
    def _not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
        handler: Callable[..., HttpResponse] = get_resolver(getattr(request, "urlconf", None)).resolve_error_handler(404)
        return handler(request, exception)

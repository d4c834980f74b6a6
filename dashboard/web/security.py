"""What protects every page: the Content-Security-Policy header, and the client's address behind a TLS
proxy (for sign-in throttling)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# Scripts and styles come from the app's own static files (plotly.js included); charts' data ride in
# <script type="application/json">, which is never run, so no inline script or handler is allowed. Inline
# styles are: templates set a few style attributes, and plotly.js adds its stylesheet as a <style> element.
# 'unsafe-eval' is there for plotly.js's WebGL traces (the run pages' power charts, "scattergl"): its regl
# renderer builds its drawing code with Function() at run time, and without it the chart says "WebGL is not
# supported" (tests/e2e/test_content_security_policy_in_browser.py). No code of the app evaluates strings.
STRICT_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


class ContentSecurityPolicyMiddleware:
    """Adds ``CONTENT_SECURITY_POLICY`` (enforced) and ``CONTENT_SECURITY_POLICY_REPORT_ONLY`` (reported by
    browsers, not enforced: to try a stricter policy first) to every response that has none of its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.headers = {
            "Content-Security-Policy": settings.CONTENT_SECURITY_POLICY,
            "Content-Security-Policy-Report-Only": settings.CONTENT_SECURITY_POLICY_REPORT_ONLY,
        }

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        for header, policy in self.headers.items():
            if policy and header not in response:
                response[header] = policy
        return response


def forwarded_client_address(request: HttpRequest) -> str | None:
    """The last address of ``X-Forwarded-For``: the one the proxy in front of the app added (Caddy replaces
    the header, nginx's ``$proxy_add_x_forwarded_for`` appends to it), so a client cannot choose it."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    last = forwarded.rsplit(",", 1)[-1].strip()
    return last or request.META.get("REMOTE_ADDR")

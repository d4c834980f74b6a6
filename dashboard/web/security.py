"""What protects every page: the client's address behind a TLS proxy (for sign-in throttling)."""

from __future__ import annotations

from django.http import HttpRequest


def forwarded_client_address(request: HttpRequest) -> str | None:
    """The last address of ``X-Forwarded-For``: the one the proxy in front of the app added (Caddy replaces
    the header, nginx's ``$proxy_add_x_forwarded_for`` appends to it), so a client cannot choose it."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    last = forwarded.rsplit(",", 1)[-1].strip()
    return last or request.META.get("REMOTE_ADDR")

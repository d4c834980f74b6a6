"""How API callers prove who they are: a bearer token, or the signed-in browser session.

The session lets someone signed in to the pages try the API from its docs page; scripts use tokens.
A request with neither gets a 401 whose ``detail`` says which of missing, malformed or unknown its
``Authorization`` header was, so a caller can fix it without guessing.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer, SessionAuth

from dashboard.projects.tokens import parse_bearer, user_for_token


class BearerToken(HttpBearer):
    """``Authorization: Bearer ww_…``: a token from ``manage.py create_api_token USER``."""

    def __call__(self, request: HttpRequest) -> Any | None:
        header = request.headers.get("Authorization")
        if not header:
            return None  # no token: the session may still authenticate
        # A token that fails ends here: falling back to the session would hide a broken token.
        token = parse_bearer(header)  # stricter than ninja's parser, and shared with /metrics
        if token is None:
            raise AuthenticationError()
        user = self.authenticate(request, token)
        if user is None:
            raise AuthenticationError()
        return user

    def authenticate(self, request: HttpRequest, token: str) -> Any | None:
        user = user_for_token(token)
        if user is not None:
            request.user = user  # code shared with the pages reads request.user
        return user


class SignedInSession(SessionAuth):
    """The browser session of a signed-in user (CSRF-checked for anything but reads)."""

    def authenticate(self, request: HttpRequest, key: str | None) -> Any | None:
        user = getattr(request, "user", None)
        return user if user is not None and user.is_authenticated and user.is_active else None


API_AUTH = [BearerToken(), SignedInSession()]


class ApiRequest(HttpRequest):
    """What an API operation receives (for type checking; ninja passes the HttpRequest): ``API_AUTH``
    has authenticated it and put the user on ``auth``."""

    auth: User


def unauthorized_detail(request: HttpRequest) -> str:
    """Why a request was not authenticated, in words."""
    header = request.headers.get("Authorization")
    if not header:
        return (
            "authentication required: send 'Authorization: Bearer TOKEN' (create a token with "
            "'python manage.py create_api_token USER') or sign in"
        )
    if parse_bearer(header) is None:
        return "malformed Authorization header: expected 'Bearer ww_…' with a token from create_api_token"
    return "unknown or revoked API token"

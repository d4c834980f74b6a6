"""Issue API tokens and resolve ``Authorization: Bearer`` headers to users.

Everything that authenticates with an API token (the REST API, the Prometheus endpoint) goes through
``user_for_bearer``, so the token format and the hashing live in one place.

Authenticating reads only: when a token's ``last_used_at`` (shown in the admin) is a minute old, the write
is handed to a task (``projects.record_token_use``), so an API GET never writes in the request.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from dashboard.projects.models import ApiToken

log = logging.getLogger(__name__)

TOKEN_PREFIX = "ww_"
PREFIX_CHARS = 10
# Writing last_used_at on every request would turn every API read into a write; once a minute is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A real token is "ww_" + 43 URL-safe characters; anything far longer is garbage, not worth hashing.
MAX_TOKEN_CHARS = 200


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User, name: str = "default") -> str:
    """Create a token for ``user`` and return it in plain text. This is the only time it is visible."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    ApiToken.objects.create(user=user, name=name, token_sha256=hash_token(token), prefix=token[:PREFIX_CHARS])
    return token


def parse_bearer(authorization_header: str | None) -> str | None:
    """The token in a ``Bearer TOKEN`` header, or None when the header is missing or malformed."""
    if not authorization_header:
        return None
    scheme, _, token = authorization_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token or len(token) > MAX_TOKEN_CHARS:
        return None
    if not token.startswith(TOKEN_PREFIX) or not token.isascii():
        return None
    return token


def user_for_token(token: str) -> User | None:
    """The active user owning ``token``, or None. Queues the ``last_used_at`` update at most once a minute."""
    api_token = ApiToken.objects.select_related("user").filter(token_sha256=hash_token(token)).first()
    if api_token is None or not api_token.user.is_active:
        return None
    now = timezone.now()
    if api_token.last_used_at is None or now - api_token.last_used_at >= LAST_USED_RESOLUTION:
        _queue_record_use(api_token.pk, now)
    return api_token.user


def _queue_record_use(token_id: int, used_at: datetime) -> None:
    from dashboard.projects.tasks import record_token_use  # the task module imports this one

    try:
        record_token_use.delay(token_id, used_at.isoformat())
    except Exception:  # a broker that is down must not fail an API call over a bookkeeping date
        log.warning("could not queue projects.record_token_use for token %s", token_id)


def record_use(token_id: int, used_at: datetime) -> bool:
    """Set the token's ``last_used_at`` unless it was set within the resolution; True if it wrote.

    A conditional UPDATE, so the tasks of concurrent requests write once.
    """
    return bool(
        ApiToken.objects.filter(pk=token_id).exclude(last_used_at__gt=used_at - LAST_USED_RESOLUTION).update(
            last_used_at=used_at
        )
    )


def user_for_bearer(authorization_header: str | None) -> User | None:
    """The user an ``Authorization`` header authenticates, or None if missing, malformed or unknown."""
    token = parse_bearer(authorization_header)
    return None if token is None else user_for_token(token)

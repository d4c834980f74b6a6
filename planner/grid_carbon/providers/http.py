"""A small JSON-over-HTTP GET with a timeout, mapping every failure to a typed provider error.

Standard library only (``urllib.request``). Bodies are size-capped, status codes and network failures
become :mod:`planner.grid_carbon.providers.base` errors, and no header (where tokens travel) is ever
put into an error message.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from planner.grid_carbon.providers.base import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeout,
)

MAX_BODY_BYTES = 8 * 1024 * 1024
USER_AGENT = "wattwise-carbon/0.1 (python urllib)"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def build_url(base_url: str, path: str, params: Mapping[str, str | int | float] | None = None) -> str:
    """Join ``base_url`` and ``path`` and append URL-encoded ``params``."""
    url = base_url.rstrip("/") + "/" + path.lstrip("/")
    if params:
        url += "?" + urllib.parse.urlencode({k: str(v) for k, v in params.items()})
    return url


def get_json(
    url: str,
    *,
    provider: str,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """GET ``url`` and return the decoded JSON body, or raise a :class:`ProviderError` subclass."""
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    )
    where = urllib.parse.urlsplit(url)
    label = f"GET {where.path}"
    # Loopback (tests, sidecars) never goes through an environment proxy.
    opener = (
        urllib.request.build_opener(urllib.request.ProxyHandler({}))
        if where.hostname in _LOOPBACK
        else urllib.request.build_opener()
    )
    try:
        with opener.open(request, timeout=timeout_s) as response:
            body = response.read(MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
        if status in (401, 403):
            raise ProviderAuthError(
                provider, f"{label} returned HTTP {status}: credentials refused"
            ) from None
        if status == 429:
            raise ProviderHTTPError(provider, f"{label} returned HTTP 429: rate limited", status) from None
        raise ProviderHTTPError(provider, f"{label} returned HTTP {status}", status) from None
    except TimeoutError:
        raise ProviderTimeout(provider, f"{label} timed out after {timeout_s:g} s") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError | socket.timeout):
            raise ProviderTimeout(provider, f"{label} timed out after {timeout_s:g} s") from None
        raise ProviderConnectionError(provider, f"{label} failed: {exc.reason}") from None
    except (http.client.HTTPException, OSError) as exc:
        raise ProviderConnectionError(provider, f"{label} failed: {type(exc).__name__}") from None
    if len(body) > MAX_BODY_BYTES:
        raise ProviderResponseError(provider, f"{label} body larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProviderResponseError(provider, f"{label} body is not valid JSON") from None

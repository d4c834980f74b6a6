"""Every page and download, whatever app it belongs to, sends anonymous visitors to the login page;
machine endpoints (the REST API under /api/, Prometheus' /metrics) answer them 401 instead. The
agents' ingest endpoint takes only POSTs, authenticated by each message's signature: a GET is a 405 and
an unsigned message a 401.

The API's self-description (/api/openapi.json, the docs page /api/docs, and /api/ leading there) is
public: it holds no data.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

PUBLIC = {"login", "logout", "password_reset", "password_reset_done", "password_reset_confirm",
          "password_reset_complete", "healthz"}
API_PUBLIC = {"openapi-json", "openapi-view", "api-root", "api-index"}
MACHINE_ROUTES = {"metrics"}  # by name, wherever they are mounted
SIGNED_ROUTES = {"ingest"}  # POST only; the HMAC of every message is its authentication
API_POST_ONLY = {"request_frontier"}  # a GET is refused (405); a POST without a token is a 401


def routes(resolver: URLResolver | None = None, prefix: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            if entry.app_name == "admin":
                continue  # Django's admin has its own login
            found += routes(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and entry.name not in PUBLIC:
            path = prefix + str(entry.pattern)
            # Fill every converter with a value it accepts; login is checked before any lookup.
            path = re.sub(r"<int:\w+>", "1", path)
            path = re.sub(r"<(?:str:|slug:)?\w+>", "x", path)
            path = re.sub(r"<uuid:\w+>", "00000000-0000-0000-0000-000000000000", path)
            found.append((entry.name or path, "/" + path.lstrip("^").rstrip("$")))
    return found


def is_machine_route(name: str, path: str) -> bool:
    return path.startswith("/api/") or name in MACHINE_ROUTES


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "path"), routes(), ids=lambda value: str(value))
def test_anonymous_visitors_are_sent_to_login(client, name, path):
    response = client.get(path)
    if path == "/":
        assert response.status_code == 302 and response["Location"].endswith("/runs/")
        return
    if path.startswith("/api/") and name in API_PUBLIC:
        assert response.status_code in (200, 302), f"{name} ({path}) answered {response.status_code}"
        return
    if name in SIGNED_ROUTES:
        assert response.status_code == 405, f"{name} ({path}) answered {response.status_code} to a GET"
        forged = {"v": 1, "kind": "batch", "node": "nobody", "body": "{}", "sig": "0" * 64}
        posted = client.post(path, forged, content_type="application/json")
        assert posted.status_code == 401, f"{name} ({path}) answered {posted.status_code} to a forged message"
        return
    if name in API_POST_ONLY:
        assert response.status_code == 405, f"{name} ({path}) answered {response.status_code} to a GET"
        posted = client.post(path.replace("/x/", "/1/"), {}, content_type="application/json")
        assert posted.status_code == 401, f"{name} ({path}) answered {posted.status_code} to a POST with no token"
        return
    if is_machine_route(name, path):
        assert response.status_code == 401, f"{name} ({path}) answered {response.status_code}, not 401"
        return
    assert response.status_code == 302, f"{name} ({path}) answered {response.status_code} to an anonymous visitor"
    assert response["Location"].startswith("/accounts/login/"), f"{name} ({path}) redirected elsewhere"


def test_the_walk_covers_the_api_and_metrics():
    names = {name for name, _ in routes()}
    assert {"list_runs", "get_samples", "get_plan", "openapi-json"} <= names
    assert "metrics" in names

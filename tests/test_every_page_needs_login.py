"""Every page and download, whatever app it belongs to, sends anonymous visitors to the login page."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

PUBLIC = {"login", "logout", "password_reset", "password_reset_done", "password_reset_confirm",
          "password_reset_complete", "healthz"}


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


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "path"), routes(), ids=lambda value: str(value))
def test_anonymous_visitors_are_sent_to_login(client, name, path):
    response = client.get(path)
    if path == "/":
        assert response.status_code == 302 and response["Location"].endswith("/runs/")
        return
    assert response.status_code == 302, f"{name} ({path}) answered {response.status_code} to an anonymous visitor"
    assert response["Location"].startswith("/accounts/login/"), f"{name} ({path}) redirected elsewhere"

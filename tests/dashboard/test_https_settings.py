"""Production settings: BEHIND_TLS_PROXY=1 alone makes ``manage.py check --deploy`` clean (SSL redirect,
secure cookies, HSTS), plain HTTP is redirected except the health check and agents' ingest, and every
response carries the Content-Security-Policy from the environment. Each case runs the settings as the
environment makes them, in a process of its own."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from dashboard.web.security import STRICT_POLICY

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "wattwise.example.org"}

# Requests through Django's test client in the child process: (name, method, path, over HTTPS?).
REQUESTS = [
    ("page over http", "get", "/accounts/login/", False),
    ("page over https", "get", "/accounts/login/", True),
    ("health over http", "get", "/healthz", False),
    ("ingest over http", "get", "/api/ingest", False),
    ("metrics over http", "get", "/metrics", False),
]
_ANSWERS = """
import json, sys, django
django.setup()
from django.test import Client
client, answers = Client(HTTP_HOST="wattwise.example.org"), {}
for name, method, path, https in json.loads(sys.argv[1]):
    response = getattr(client, method)(path, **({"HTTP_X_FORWARDED_PROTO": "https"} if https else {}))
    answers[name] = {"status": response.status_code, "location": response.get("Location"),
                     "headers": dict(response.headers), "cookies": {k: dict(v) for k, v in response.cookies.items()}}
print(json.dumps(answers))
"""


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Not the test run's DJANGO_ALLOW_ASYNC_UNSAFE (tests/conftest.py): check --deploy rightly refuses it.
    unset = ("DEBUG", "SECRET_KEY", "BEHIND_TLS_PROXY", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE")
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run([sys.executable, *args], env={**clean, **env, "DJANGO_SETTINGS_MODULE": "dashboard.settings"},
                          capture_output=True, text=True, cwd=ROOT)


def answers(env: dict[str, str]) -> dict[str, Any]:
    result = run(["-c", _ANSWERS, json.dumps(REQUESTS)], env)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def test_check_deploy_is_clean_behind_a_tls_proxy_and_warns_without_it():
    check = ["manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    behind = run(check, {**PRODUCTION, "BEHIND_TLS_PROXY": "1"})
    assert behind.returncode == 0, behind.stderr
    assert "no issues" in behind.stdout
    plain = run(check, PRODUCTION)
    assert plain.returncode != 0
    for warning in ("W004", "W008", "W012", "W016"):  # HSTS, SSL redirect, session and CSRF cookies
        assert f"security.{warning}" in plain.stderr


def test_behind_a_tls_proxy_http_is_redirected_and_https_gets_hsts_and_secure_cookies():
    got = answers({**PRODUCTION, "BEHIND_TLS_PROXY": "1"})
    assert got["page over http"]["status"] == 301
    assert got["page over http"]["location"] == "https://wattwise.example.org/accounts/login/"
    page = got["page over https"]
    assert page["status"] == 200
    assert page["headers"]["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert page["cookies"]["csrftoken"]["secure"] is True
    # Inside the compose network: the health check, the demo agent's ingest and Prometheus' scrape of
    # http://web:8000/metrics stay on plain HTTP.
    assert got["health over http"]["status"] == 200
    assert got["ingest over http"]["status"] == 405  # answered by the ingest view: a POST is expected
    assert got["metrics over http"]["status"] == 401  # answered by the metrics view: a token is needed


def test_hsts_length_comes_from_the_environment():
    got = answers({**PRODUCTION, "BEHIND_TLS_PROXY": "1", "WATTWISE_HSTS_SECONDS": "600",
                   "WATTWISE_HSTS_INCLUDE_SUBDOMAINS": "0", "WATTWISE_HSTS_PRELOAD": "0"})
    assert got["page over https"]["headers"]["Strict-Transport-Security"] == "max-age=600"


def test_every_response_carries_the_content_security_policy_from_the_environment():
    default = answers(PRODUCTION)
    for name in ("page over http", "health over http", "ingest over http"):
        assert default[name]["headers"]["Content-Security-Policy"] == STRICT_POLICY, name
    assert "'unsafe-inline'" not in STRICT_POLICY.split("script-src")[1].split(";")[0]
    assert "Content-Security-Policy-Report-Only" not in default["page over http"]["headers"]

    trial = answers({**PRODUCTION, "CONTENT_SECURITY_POLICY": "off",
                     "CONTENT_SECURITY_POLICY_REPORT_ONLY": "default-src 'none'"})["page over http"]["headers"]
    assert "Content-Security-Policy" not in trial
    assert trial["Content-Security-Policy-Report-Only"] == "default-src 'none'"

"""TLS in front of the web service as docs/deploy.md sets it up: Caddy with deploy/Caddyfile terminates
HTTPS and forwards to gunicorn, which (BEHIND_TLS_PROXY=1) treats the request as secure: its cookies are
marked Secure and a sign-in form posted over HTTPS passes Django's CSRF origin check."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.agents.support import free_port
from tests.conftest import need_service
from tests.worker_process import test_database_url as app_database_url
from tests.worker_process import wait_until

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.processes]


@contextmanager
def running(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def caddyfile(web_port: int, storage: Path) -> str:
    """deploy/Caddyfile as shipped, with gunicorn on this host for ``web:8000`` and, for a test, no admin
    endpoint, no redirect listener on port 80, its own storage, and its local CA kept out of the system's
    trust store."""
    shipped = (ROOT / "deploy" / "Caddyfile").read_text()
    assert shipped.count("reverse_proxy web:8000") == 1
    test_options = f"{{\n\tadmin off\n\tskip_install_trust\n\tauto_https disable_redirects\n\tstorage file_system {storage}\n}}\n"
    return test_options + shipped.replace("reverse_proxy web:8000", f"reverse_proxy 127.0.0.1:{web_port}")


def test_https_through_caddy_reaches_the_app_as_a_secure_request(postgres, tmp_path, django_user_model):
    caddy = shutil.which("caddy")
    need_service("caddy (apt-get install caddy; .ci/services installs it)", caddy is not None)
    assert caddy is not None
    django_user_model.objects.create_user("ana", password="pw-ana")
    web_port, https_port = free_port(), free_port()
    origin = f"https://localhost:{https_port}"
    app_env = {
        **os.environ, "DATABASE_URL": app_database_url(), "DEBUG": "0", "SECRET_KEY": "test-only",
        "ALLOWED_HOSTS": "localhost", "BEHIND_TLS_PROXY": "1", "SESSION_COOKIE_SECURE": "1",
        "DATABASE_CONN_MAX_AGE": "0",
    }
    (tmp_path / "Caddyfile").write_text(caddyfile(web_port, tmp_path / "caddy"))
    caddy_env = {**os.environ, "WATTWISE_DOMAIN": f"localhost:{https_port}", "HOME": str(tmp_path),
                 "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    # gunicorn itself believes X-Forwarded-Proto from 127.0.0.1; in compose Caddy connects from another
    # address, so only the app's setting decides. Trust no address here either (192.0.2.1 is TEST-NET-1).
    gunicorn = [sys.executable, "-m", "gunicorn", "dashboard.wsgi", "--bind", f"127.0.0.1:{web_port}", "--workers", "1",
                "--forwarded-allow-ips", "192.0.2.1"]
    with running(gunicorn, app_env, ROOT) as web, \
            running([caddy, "run", "--config", "Caddyfile", "--adapter", "caddyfile"], caddy_env, tmp_path) as proxy:
        root_ca = tmp_path / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        wait_until(root_ca.exists, 60, "Caddy's local CA", proxy)
        context = ssl.create_default_context(cafile=str(root_ca))

        def https() -> http.client.HTTPSConnection:
            return http.client.HTTPSConnection("localhost", https_port, context=context, timeout=10)

        def answers() -> bool:
            try:
                connection = https()
                connection.request("GET", "/healthz")
                return connection.getresponse().status == 200
            except OSError:
                return False

        wait_until(answers, 60, "the app through Caddy over HTTPS", web)

        connection = https()
        connection.request("GET", "/accounts/login/")
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        cookie = response.getheader("Set-Cookie") or ""
        assert re.search(r"csrftoken=\w+;.*\bSecure\b", cookie), cookie
        token = re.search(r"csrftoken=(\w+)", cookie).group(1)  # type: ignore[union-attr]

        connection.request("POST", "/accounts/login/", urlencode(
            {"username": "ana", "password": "pw-ana", "csrfmiddlewaretoken": token}), headers={
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={token}",
            "Origin": origin, "Referer": f"{origin}/accounts/login/"})
        response = connection.getresponse()
        response.read()
        # Signed in: the origin https://localhost:PORT matched, so Django saw an HTTPS request for that host.
        assert response.status == 302, response.status
        assert response.getheader("Location") == "/runs/"
        assert "Secure" in (response.getheader("Set-Cookie") or "")

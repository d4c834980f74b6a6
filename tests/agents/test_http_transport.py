"""The HTTP transport: what it sends, and what each answer of the app means to the agent."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.agents.http_server import ScriptedApp, scripted_app
from tests.agents.support import TOKEN, free_port
from wattwise_agent import wire
from wattwise_agent.transport import (
    EnvelopeRefused,
    HttpTransport,
    TokenRejected,
    TransportUnavailable,
    transport_for,
)

ROOT = Path(__file__).resolve().parents[2]


def env(n: int) -> dict[str, Any]:
    return wire.seal("batch", "node-1", {"n": n}, TOKEN, check=False)


@pytest.fixture
def app() -> Iterator[ScriptedApp]:
    with scripted_app() as running:
        yield running


def test_envelopes_are_posted_gzipped_as_json_to_the_ingest_path_over_one_connection(app: ScriptedApp) -> None:
    transport = HttpTransport(app.url)
    for n in range(3):
        transport.send(env(n))
    transport.close()
    assert [r.body for r in app.received] == [env(0), env(1), env(2)]
    assert {r.path for r in app.received} == {"/api/ingest"}
    first = app.received[0].headers
    assert first["Content-Type"] == "application/json" and first["Content-Encoding"] == "gzip"
    assert first["User-Agent"].startswith("wattwise-agent/")
    assert {r.connection for r in app.received} == {app.received[0].connection}  # kept alive


def test_a_connection_the_app_closes_after_each_answer_is_opened_again(app: ScriptedApp) -> None:
    app.close_after_each = True
    transport = HttpTransport(app.url)
    for n in range(3):
        transport.send(env(n))
    assert len(app.envelopes) == 3 and len({r.connection for r in app.received}) == 3


def test_the_apps_path_prefix_is_kept(app: ScriptedApp) -> None:
    HttpTransport(app.url + "/wattwise/").send(env(0))
    assert app.received[0].path == "/wattwise/api/ingest"


def test_several_envelopes_go_as_one_list_in_one_request(app: ScriptedApp) -> None:
    HttpTransport(app.url).send_many([env(0), env(1), env(2)])
    assert len(app.received) == 1 and app.received[0].body == [env(0), env(1), env(2)]


def test_401_means_the_token_was_rejected_with_the_apps_reason(app: ScriptedApp) -> None:
    app.answer(401, {"detail": "unknown key 0123456789abcdef (node 'node-1')"})
    with pytest.raises(TokenRejected) as rejected:
        HttpTransport(app.url).send(env(0))
    assert str(rejected.value) == "token rejected (401): unknown key 0123456789abcdef (node 'node-1')"


@pytest.mark.parametrize("status", [400, 413, 415])
def test_400_413_and_415_mean_the_envelope_can_never_be_accepted(app: ScriptedApp, status: int) -> None:
    app.answer(status, {"detail": "envelope 1: gpus[0].util_pct[3]: expected whole numbers", "index": 1})
    with pytest.raises(EnvelopeRefused) as refused:
        HttpTransport(app.url).send_many([env(0), env(1)])
    assert refused.value.status == status and refused.value.index == 1
    assert refused.value.reason == "envelope 1: gpus[0].util_pct[3]: expected whole numbers"


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_mean_try_again_after_retry_after(app: ScriptedApp, status: int) -> None:
    app.answer(status, {"detail": "ingest is behind"}, Retry_After="7")
    with pytest.raises(TransportUnavailable) as busy:
        HttpTransport(app.url).send(env(0))
    assert busy.value.retry_after_s == 7.0 and "ingest is behind" in str(busy.value)


def test_a_server_error_or_unknown_answer_means_try_again_later(app: ScriptedApp) -> None:
    app.answer(502, {})
    with pytest.raises(TransportUnavailable) as failed:
        HttpTransport(app.url).send(env(0))
    assert failed.value.retry_after_s is None and "502" in str(failed.value)


def test_an_app_that_cannot_be_reached_means_try_again_later() -> None:
    with pytest.raises(TransportUnavailable, match="unreachable"):
        HttpTransport(f"http://127.0.0.1:{free_port()}", connect_timeout_s=1.0).send(env(0))


def test_urls_other_than_http_and_https_are_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match="not an http:// or https:// URL: 'redis://host:6379/0'"):
        HttpTransport("redis://host:6379/0")
    with pytest.raises(ValueError, match="takes no user or password"):
        HttpTransport("https://me:secret@wattwise.example.org")


def test_the_app_url_and_a_broker_together_are_refused_and_neither_is_explained() -> None:
    with pytest.raises(ValueError, match=r"both the app's URL \(https://w.example\) and a broker \(redis://u:\*\*\*@r:6379/0\)"):
        transport_for("https://w.example", "redis://u:pw@r:6379/0")
    with pytest.raises(ValueError, match="nowhere to send: set WATTWISE_URL"):
        transport_for(None, None)
    assert isinstance(transport_for("https://w.example", None), HttpTransport)


def test_a_ca_bundle_that_cannot_be_read_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot use the CA bundle"):
        HttpTransport("https://w.example", ca_bundle=str(tmp_path / "missing.pem"))


# --- HTTPS -----------------------------------------------------------------------------------------


@pytest.fixture
def https_app(tmp_path: Path) -> Iterator[tuple[str, Path, list[Any]]]:
    """An HTTPS server with a self-signed certificate for 127.0.0.1; yields its URL, the cert and what came."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    received: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers["Content-Length"]))
            body = json.loads(gzip.decompress(data))
            received.extend(body if isinstance(body, list) else [body])
            self.send_response(202)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert, received
    finally:
        server.shutdown()
        server.server_close()


def test_https_verifies_the_apps_certificate_against_the_ca_bundle(https_app: tuple[str, Path, list[Any]]) -> None:
    url, cert, received = https_app
    HttpTransport(url, ca_bundle=str(cert)).send(env(0))
    assert received == [env(0)]
    with pytest.raises(TransportUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        HttpTransport(url).send(env(1))  # the system's authorities do not know this certificate
    assert received == [env(0)]


def test_the_cli_reads_the_ca_bundle_from_wattwise_ca_bundle(https_app: tuple[str, Path, list[Any]], tmp_path: Path) -> None:
    url, cert, received = https_app
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    environment.update(WATTWISE_TOKEN=TOKEN, WATTWISE_URL=url, WATTWISE_CA_BUNDLE=str(cert))
    result = subprocess.run(
        [sys.executable, "-m", "wattwise_agent", "stream", "--backend", "simulated", "--run", "tls", "--node", "n1",
         "--duration", "10s", "--fast", "--quiet", "--spool-dir", str(tmp_path / "spool")],
        capture_output=True, text=True, cwd=ROOT, env=environment, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    batches = json.loads(result.stdout)["batches_sent"]
    assert batches >= 2 and [e["kind"] for e in received] == ["open_run", *["batch"] * batches, "close_run"]


def test_the_torch_tracker_sends_to_the_apps_url(app: ScriptedApp, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from wattwise_agent.torch_hooks import Tracker

    monkeypatch.delenv("WATTWISE_BROKER_URL", raising=False)
    with Tracker("r", backend="simulated", url=app.url, token=TOKEN, node="n1", rate_hz=50,
                 spool_dir=tmp_path) as tracker:
        tracker.step()
    assert tracker.summary is not None and tracker.summary.spooled == 0 and tracker.error is None
    kinds = [e["kind"] for e in app.envelopes]
    assert kinds[0] == "open_run" and kinds[-1] == "close_run"

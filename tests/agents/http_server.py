"""A scripted HTTP server for the agent's transport tests: it answers what the test says, records what came."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any  # the decompressed JSON
    connection: int  # which TCP connection it came on (kept-alive requests share one)


@dataclass
class ScriptedApp:
    """Answers the next scripted (status, body, headers) to each POST; 202 once the script is used up."""

    script: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    close_after_each: bool = False
    url: str = ""

    def answer(self, status: int, body: dict[str, Any] | None = None, **headers: str) -> None:
        self.script.append((status, body or {}, {k.replace("_", "-"): v for k, v in headers.items()}))

    @property
    def envelopes(self) -> list[dict[str, Any]]:
        """Every envelope received, in order (lists flattened)."""
        out: list[dict[str, Any]] = []
        for request in self.received:
            out.extend(request.body if isinstance(request.body, list) else [request.body])
        return out


@contextmanager
def scripted_app() -> Iterator[ScriptedApp]:
    app = ScriptedApp()
    lock = threading.Lock()
    connections = iter(range(1, 1_000_000))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection_number = next(connections)

        def do_POST(self) -> None:  # the http.server API names it
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                data = gzip.decompress(data)
            with lock:
                app.received.append(Received(self.path, dict(self.headers), json.loads(data), self.connection_number))
                status, body, headers = app.script.pop(0) if app.script else (202, {"queued": 1}, {})
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            if app.close_after_each:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    app.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        server.server_close()

"""A fake HTTP server for the live-provider tests: threaded ``http.server`` on 127.0.0.1, port 0."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    """What the fake server sends for a path."""

    body: bytes | str | dict[str, Any] | list[Any] = b""
    status: int = 200
    delay_s: float = 0.0
    content_type: str = "application/json"


@dataclass
class Seen:
    """A request the fake server received."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class FakeServer:
    """Routes are exact paths (no query); a route may be a Reply or a function of the request."""

    url: str = ""
    routes: dict[str, Reply | Callable[[Seen], Reply]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def route(self, path: str, reply: Reply | Callable[[Seen], Reply]) -> None:
        self.routes[path] = reply


def handler_for(server_state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            request = Seen(parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()})
            server_state.seen.append(request)
            route = server_state.routes.get(parts.path)
            reply = (
                Reply(b'{"error": "not found"}', 404)
                if route is None
                else route
                if isinstance(route, Reply)
                else route(request)
            )
            if reply.delay_s:
                time.sleep(reply.delay_s)
            body = reply.body
            if isinstance(body, dict | list):
                body = json.dumps(body)
            data = body.encode() if isinstance(body, str) else body
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


@contextmanager
def serving() -> Iterator[FakeServer]:
    """A threaded fake provider server on 127.0.0.1 with an OS-chosen port, stopped on exit."""
    state = FakeServer()
    server = QuietServer(("127.0.0.1", 0), handler_for(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()

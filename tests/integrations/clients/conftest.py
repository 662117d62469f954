"""Fixtures for the client integrations: a current trace, a real HTTP server on a loopback
port, a port nothing listens on, and Redis key prefixes that are cleaned up afterwards."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from lagless._trace import Trace, _current_trace

JSON_BODY = json.dumps({"ok": True, "items": list(range(20))}).encode()


@pytest.fixture
def trace() -> Iterator[Trace]:
    """A trace made current for the test's context (and the tasks and threads it starts)."""
    current = Trace("GET", "/test")
    token = _current_trace.set(current)
    try:
        yield current
    finally:
        _current_trace.reset(token)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so clients keep the connection alive, as they would against a real API.
    protocol_version = "HTTP/1.1"

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/json" or path.startswith("/users/"):
            self._reply(200, JSON_BODY)
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._reply(code, b'{"error": "status"}')
        elif path == "/redirect":
            self._reply(302, b"", {"Location": "/json"})
        else:
            self._reply(404, b'{"error": "not found"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self._reply(201, body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        return


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of a real threaded HTTP server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_url() -> str:
    """A loopback URL whose port was free a moment ago: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/json"


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A unique Redis key prefix; every key under it is deleted after the test."""
    import redis

    prefix = f"lagless-test:clients:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()

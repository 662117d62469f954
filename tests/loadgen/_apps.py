"""Small apps the loadgen tests load: raw ASGI/WSGI callables with controllable delays."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _reply(send: Any, status: int, body: bytes, ctype: bytes = b"application/json") -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ControlledApp:
    """An ASGI app: ``/`` answers at once, ``/slow`` after ``slow_s``; after ``stall_after``
    requests the *whole server* stalls once for ``stall_s`` (a blocking sleep on the event loop,
    like a GC pause or a synchronous call in an async handler); ``/items`` returns ids and
    ``/items/{id}`` echoes one (for captures); ``/missing`` is a 404."""

    def __init__(self, *, slow_s: float = 0.2) -> None:
        self.slow_s = slow_s
        self.stall_after: int | None = None
        self.stall_s = 1.0
        self.count = 0
        self.seen: list[str] = []
        self._lock = threading.Lock()
        self.arm_gate(1)

    def arm_gate(self, n: int, *, pass_first: int = 1) -> None:
        """Hold every ``/gate`` response until ``n`` gated requests are in flight at once (or
        10 s passed, so a generator that waits for responses fails the test instead of hanging
        it). The first ``pass_first`` requests (bench's pre-flight) are answered at once.
        ``max_in_flight`` is the most gated requests seen in flight together."""
        with self._lock:
            self.gate_n = n
            self.gate_pass = pass_first
            self.in_flight = 0
            self.max_in_flight = 0
            self._gate_open: asyncio.Event | None = None

    async def _gate(self) -> None:
        with self._lock:
            if self.gate_pass > 0:
                self.gate_pass -= 1
                return
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self._gate_open is None:
                self._gate_open = asyncio.Event()  # the server's loop (one uvicorn thread)
            opened = self._gate_open
            if self.in_flight >= self.gate_n:
                opened.set()
        try:
            await asyncio.wait_for(opened.wait(), timeout=10.0)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self.in_flight -= 1

    def arm_stall(self, after: int, seconds: float = 1.0) -> None:
        with self._lock:
            self.count = 0
            self.stall_after = after
            self.stall_s = seconds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        path = scope["path"]
        with self._lock:
            self.count += 1
            stall = self.stall_after is not None and self.count == self.stall_after
            if len(self.seen) < 10_000:
                self.seen.append(path)
        if stall:
            time.sleep(self.stall_s)  # blocks the server's event loop: every request waits
        if path == "/slow":
            await asyncio.sleep(self.slow_s)
        if path == "/gate":
            await self._gate()
        if path == "/items":
            await _reply(send, 200, json.dumps({"items": [{"id": 41}, {"id": 42}]}).encode())
        elif path.startswith("/items/"):
            await _reply(send, 200, json.dumps({"id": path.rsplit("/", 1)[1]}).encode())
        elif path == "/missing":
            await _reply(send, 404, b"{}")
        else:
            await _reply(send, 200, b'{"ok": true}')


#: For ``module:app`` targets in CLI tests.
app = ControlledApp()


async def slow_app(scope: Any, receive: Any, send: Any) -> None:
    """Every request takes ~20 ms (for regression verdicts against a fast baseline)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await asyncio.sleep(0.02)
    await _reply(send, 200, b"{}")


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = json.dumps({"path": environ["PATH_INFO"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]

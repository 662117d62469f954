"""ASGI adapters: the monitor's endpoints and on-demand profiling in front of an app, and
``/metrics`` as a standalone ASGI app.

A plain ASGI class (no ``BaseHTTPMiddleware``): for a request that is not for the monitor and
carries no profiling flag it costs one ``owns()`` check and, only when a profile token is set,
one scan of the headers.
"""

from __future__ import annotations

from typing import Any

from lagless._trace import _current_trace
from lagless.monitor import _profiling
from lagless.monitor._browser import MAX_BODY
from lagless.monitor._http import Request, Response, text
from lagless.monitor._monitor import INTERNAL, Monitor, get_monitor, skip_traces, start

Scope = dict[str, Any]
Receive = Any
Send = Any
ASGIApp = Any


def _request(scope: Scope, body: bytes) -> Request:
    headers: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        key = name.decode("latin-1").lower()
        text_value = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text_value}" if key in headers else text_value
    client = scope.get("client")
    return Request(
        method=scope.get("method", "GET"),
        path=scope.get("path", "/"),
        query=(scope.get("query_string") or b"").decode("latin-1"),
        headers=headers,
        client=client[0] if client else None,
        body=body,
        scheme=scope.get("scheme", "http"),
    )


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The request body, or ``None`` once it passes ``limit`` bytes (the rest is not read)."""
    for name, value in scope.get("headers") or ():
        if name.lower() == b"content-length" and value.isdigit() and int(value) > limit:
            return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, response: Response, head: bool = False) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.all_headers()
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else response.body})


def _mark_internal() -> None:
    trace = _current_trace.get()
    if trace is not None:
        trace.attrs[INTERNAL] = True


class MonitorMiddleware:
    """Serve ``/metrics``, the dashboard, the browser beacon and on-demand profiles in front of
    an ASGI app; every other request goes to ``app`` untouched.

    >>> app = lagless.instrument(app)
    >>> app = MonitorMiddleware(app)          # the process's monitor, from the settings

    Put it outside lagless's tracing middleware (as above) so scrapes are not traced at all;
    inside works too (its requests are then left out of the statistics).
    """

    def __init__(self, app: ASGIApp, *, monitor: Monitor | None = None) -> None:
        self.app = app
        self.monitor = monitor or get_monitor() or start()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        mon = self.monitor
        if mon.owns(scope["path"]):
            _mark_internal()
            body = b""
            if scope.get("method") == "POST":
                read = await _read_body(scope, receive, MAX_BODY)
                if read is None:
                    await _send(send, text(413, f"lagless: body larger than {MAX_BODY} bytes"))
                    return
                body = read
            response = mon.handle(_request(scope, body))
            await _send(send, response, head=scope.get("method") == "HEAD")
            return
        gate = mon.profile
        if gate.enabled:
            flag = _profiling.find_flag(scope.get("headers") or (), scope.get("query_string", b""))
            if flag is not None:
                await self._profile(scope, receive, send, *flag)
                return
        await self.app(scope, receive, send)

    async def _profile(
        self, scope: Scope, receive: Receive, send: Send, given: str, fmt: str
    ) -> None:
        gate = self.monitor.profile
        _mark_internal()  # a profiled request runs slower: keep it out of the statistics
        refusal = gate.refusal(given, fmt)
        if refusal is not None:
            await _send(send, refusal)
            return
        if not gate.acquire():
            await _send(send, _profiling.busy())
            return
        try:
            profiler = _profiling.new_profiler("enabled")
            if profiler is None:
                await _send(send, _profiling.unavailable())
                return
            status = 0

            async def capture(message: dict[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                # The app's own response is dropped: the profile replaces it.

            token = skip_traces.set(True)
            profiler.start()
            try:
                await self.app(scope, receive, capture)
            except Exception:
                status = status or 500
            finally:
                profiler.stop()
                skip_traces.reset(token)
            response = _profiling.render(profiler, fmt, status)
        finally:
            gate.release()
        await _send(send, response)


class MetricsApp:
    """``/metrics`` as a standalone ASGI app, to mount wherever (``app.mount("/metrics",
    MetricsApp())``) or serve on a separate port."""

    def __init__(self, *, monitor: Monitor | None = None) -> None:
        self.monitor = monitor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        _mark_internal()
        mon = self.monitor or get_monitor() or start()
        request = _request(scope, b"")
        response = mon.metrics(request.headers.get("accept", ""))
        await _send(send, response, head=scope.get("method") == "HEAD")

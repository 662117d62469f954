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
        # More than 20 digits (bytes.isdigit is ASCII-only) is over any limit; int() of a
        # few thousand digits would raise.
        if (
            name.lower() == b"content-length"
            and value.isdigit()
            and (len(value) > 20 or int(value) > limit)
        ):
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

    ``inject_snippet=True`` (with ``browser_timing`` on) adds the browser-timing ``<script>`` to
    the app's HTML pages, so no template has to change: for a request that accepts
    ``text/html`` the page is asked for uncompressed and the tag goes in before ``</head>``.
    """

    def __init__(
        self, app: ASGIApp, *, monitor: Monitor | None = None, inject_snippet: bool = False
    ) -> None:
        self.app = app
        self.monitor = monitor or get_monitor() or start()
        beacon = self.monitor.beacon_path
        self.snippet: bytes | None = (
            f'<script src="{beacon}.js" defer></script>'.encode()
            if inject_snippet and beacon is not None
            else None
        )

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
        if self.snippet is not None and scope.get("method") == "GET" and _wants_html(scope):
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]
            injector = _SnippetInjector(send, self.snippet)
            await self.app({**scope, "headers": headers}, receive, injector.send)
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


def _wants_html(scope: Scope) -> bool:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"accept":
            return b"text/html" in value
    return False


class _SnippetInjector:
    """Buffers an uncompressed HTML response (up to :data:`_MAX_HTML` bytes) and puts the
    snippet before ``</head>`` (else ``</body>``, else at the end); anything else streams
    through untouched."""

    def __init__(self, send: Send, snippet: bytes) -> None:
        self._send = send
        self.snippet = snippet
        self.start: dict[str, Any] | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.passthrough = False

    async def send(self, message: dict[str, Any]) -> None:
        if self.passthrough:
            await self._send(message)
            return
        mtype = message["type"]
        if mtype == "http.response.start":
            headers = message.get("headers") or []
            ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            encoded = any(k.lower() == b"content-encoding" for k, _ in headers)
            # Only a 200 carries the page: a 304 (Starlette's StaticFiles keeps the type on
            # it) or 204 must stay bodiless (RFC 9110 §15.4.5), a 206 is a byte range.
            if message.get("status") != 200 or not ctype.startswith(b"text/html") or encoded:
                self.passthrough = True
                await self._send(message)
                return
            self.start = message
            return
        if mtype != "http.response.body" or self.start is None:
            await self._send(message)
            return
        body = message.get("body", b"")
        self.chunks.append(body)
        self.size += len(body)
        more = message.get("more_body", False)
        if more and self.size <= _MAX_HTML:
            return
        if more:  # too big to hold: send what we have, unchanged, and stream the rest
            self.passthrough = True
            await self._send(self.start)
            await self._send({**message, "body": b"".join(self.chunks)})
            return
        html = b"".join(self.chunks)
        lower = html.lower()
        at = lower.rfind(b"</head>")
        if at < 0:
            at = lower.rfind(b"</body>")
        html = html + self.snippet if at < 0 else html[:at] + self.snippet + html[at:]
        headers = [
            (k, v) for k, v in self.start.get("headers") or [] if k.lower() != b"content-length"
        ]
        headers.append((b"content-length", str(len(html)).encode()))
        await self._send({**self.start, "headers": headers})
        await self._send({"type": "http.response.body", "body": html})


_MAX_HTML = 2 * 1024 * 1024


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

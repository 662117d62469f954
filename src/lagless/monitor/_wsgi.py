"""WSGI adapters: the monitor's endpoints and on-demand profiling in front of a WSGI app
(Flask, Django's ``get_wsgi_application()``, any), and ``/metrics`` as a WSGI app."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import Any

from lagless._trace import _current_trace
from lagless.monitor import _profiling
from lagless.monitor._browser import MAX_BODY
from lagless.monitor._http import Request, Response, text
from lagless.monitor._monitor import INTERNAL, Monitor, get_monitor, skip_traces, start

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_REASONS = {
    200: "OK",
    204: "No Content",
    303: "See Other",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
}


def _headers(environ: Environ) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out[key[5:].replace("_", "-").lower()] = value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            out[key.replace("_", "-").lower()] = value
    return out


def request_from_environ(environ: Environ, body: bytes = b"") -> Request:
    return Request(
        method=environ.get("REQUEST_METHOD", "GET"),
        path=environ.get("PATH_INFO", "/") or "/",
        query=environ.get("QUERY_STRING", ""),
        headers=_headers(environ),
        client=environ.get("REMOTE_ADDR"),
        body=body,
        scheme=environ.get("wsgi.url_scheme", "http"),
    )


def read_body(environ: Environ, limit: int) -> bytes | None:
    """At most ``limit`` bytes of the body; ``None`` if it is longer (PEP 3333: read no more
    than CONTENT_LENGTH)."""
    length = environ.get("CONTENT_LENGTH") or ""
    # ASCII digits only: str.isdigit takes "²", which int() refuses.
    if not (length.isascii() and length.isdigit()):
        return b""
    if len(length) > 20:
        return None
    n = int(length)
    if n > limit:
        return None
    return bytes(environ["wsgi.input"].read(n))


def respond(start_response: StartResponse, response: Response, head: bool = False) -> list[bytes]:
    reason = _REASONS.get(response.status, "")
    start_response(f"{response.status} {reason}".strip(), response.all_headers())
    return [b"" if head else response.body]


def _mark_internal() -> None:
    trace = _current_trace.get()
    if trace is not None:
        trace.attrs[INTERNAL] = True


class MonitorWSGIMiddleware:
    """The WSGI twin of :class:`~lagless.monitor.MonitorMiddleware`.

    >>> app.wsgi_app = MonitorWSGIMiddleware(app.wsgi_app)          # Flask, after instrument
    >>> application = MonitorWSGIMiddleware(get_wsgi_application())  # Django's wsgi.py
    """

    def __init__(self, app: WSGIApp, *, monitor: Monitor | None = None) -> None:
        self.app = app
        self.monitor = monitor or get_monitor() or start()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        mon = self.monitor
        path = environ.get("PATH_INFO", "/") or "/"
        if mon.owns(path):
            _mark_internal()
            body = b""
            if environ.get("REQUEST_METHOD") == "POST":
                read = read_body(environ, MAX_BODY)
                if read is None:
                    return respond(
                        start_response, text(413, f"lagless: body larger than {MAX_BODY} bytes")
                    )
                body = read
            response = mon.handle(request_from_environ(environ, body))
            return respond(start_response, response, environ.get("REQUEST_METHOD") == "HEAD")
        if mon.profile.enabled:
            headers = [(k, v) for k, v in environ.items() if k == "HTTP_X_LAGLESS_PROFILE"]
            pairs = [("x-lagless-profile", v) for _, v in headers]
            fmt = environ.get("HTTP_X_LAGLESS_PROFILE_FORMAT")
            if fmt is not None:
                pairs.append(("x-lagless-profile-format", fmt))
            flag = _profiling.find_flag(pairs, environ.get("QUERY_STRING", ""))
            if flag is not None:
                return self._profile(environ, start_response, *flag)
        return self.app(environ, start_response)

    def _profile(
        self, environ: Environ, start_response: StartResponse, given: str, fmt: str
    ) -> list[bytes]:
        gate = self.monitor.profile
        _mark_internal()
        refusal = gate.refusal(given, fmt)
        if refusal is not None:
            return respond(start_response, refusal)
        if not gate.acquire():
            return respond(start_response, _profiling.busy())
        try:
            profiler = _profiling.new_profiler("disabled")
            if profiler is None:
                return respond(start_response, _profiling.unavailable())
            status = 0

            def capture(status_line: str, headers: Any, exc_info: Any = None) -> Any:
                nonlocal status
                status = int(status_line.split(" ", 1)[0])
                return lambda data: None

            token = skip_traces.set(True)
            profiler.start()
            try:
                result = self.app(environ, capture)
                try:
                    _drain(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            except Exception:
                status = status or 500
            finally:
                profiler.stop()
                skip_traces.reset(token)
            response = _profiling.render(profiler, fmt, status)
        finally:
            gate.release()
        return respond(start_response, response)


def _drain(result: Iterable[bytes]) -> None:
    """Run the app's body to the end (a generator body may still be doing work)."""
    collections.deque(result, maxlen=0)


def metrics_wsgi_app(*, monitor: Monitor | None = None) -> WSGIApp:
    """``/metrics`` as a WSGI app (mount it with werkzeug's ``DispatcherMiddleware``, or serve
    it on its own port)."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        _mark_internal()
        mon = monitor or get_monitor() or start()
        response = mon.metrics(environ.get("HTTP_ACCEPT", ""))
        return respond(start_response, response, environ.get("REQUEST_METHOD") == "HEAD")

    return app

"""WSGI middleware that records one trace per request (Flask and any WSGI app).

The trace stays current while the app's response iterable is consumed (a streaming generator
may still run queries) and is finished when the server calls ``close()``, as PEP 3333 requires
servers to; the wrapped iterable's own ``close()`` is always called.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextvars import Token
from time import perf_counter_ns as _now
from time import time as _wall
from typing import Any

from lagless._guard import report_internal_error
from lagless._runtime import Runtime, get_runtime
from lagless._server_timing import server_timing
from lagless._spans import error_text
from lagless._trace import Trace, _current_trace

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
RouteResolver = Callable[[Environ], "str | None"]

_set = _current_trace.set
_reset = _current_trace.reset


class _EnvironHeaders:
    """Request headers read lazily from a WSGI environ (``HTTP_*`` keys plus the two
    content keys), in the shape :class:`Trace` decodes."""

    __slots__ = ("environ",)

    def __init__(self, environ: Environ) -> None:
        self.environ = environ

    def items(self) -> Iterator[tuple[str, str]]:
        for key, value in self.environ.items():
            if key.startswith("HTTP_"):
                yield key[5:].replace("_", "-").lower(), value
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                yield key.replace("_", "-").lower(), value


def _default_route(environ: Environ) -> str | None:
    return environ.get("lagless.route")


class _ClosingIterable:
    """Wraps the app's iterable: counts bytes, keeps the trace current, finishes on close."""

    __slots__ = ("_closed", "_finish", "_inner", "_iter", "trace")

    def __init__(self, inner: Iterable[bytes], trace: Trace, finish: Callable[[], None]) -> None:
        self._inner = inner
        self._iter = iter(inner)
        self.trace = trace
        self._finish = finish
        self._closed = False

    def __iter__(self) -> _ClosingIterable:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._iter)
        self.trace.response_bytes += len(chunk)
        return chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._finish()


class LaglessWSGIMiddleware:
    """Trace every request of a WSGI app. ``lagless.instrument(flask_app)`` uses it for you
    (wrapping ``flask_app.wsgi_app``, so ``flask_app.run()`` keeps working)."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        runtime: Runtime | None = None,
        route_resolver: RouteResolver | None = None,
        framework: str = "wsgi",
    ) -> None:
        self.app = app
        self.runtime = runtime or get_runtime()
        self.route_resolver: RouteResolver = route_resolver or _default_route
        self.framework = framework

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        rt = self.runtime
        if not rt.enabled:
            return self.app(environ, start_response)
        trace = Trace(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", "") or "/",
            start_time=_wall(),
            request_headers=_EnvironHeaders(environ),
            query_string=environ.get("QUERY_STRING", ""),
        )
        trace.attrs["framework"] = self.framework
        environ["lagless.trace"] = trace
        token: Token[Trace | None] | None = _set(trace)
        add_timing = rt.server_timing
        digest = hashlib.blake2b(digest_size=16) if rt.body_digest else None

        def start_response_wrapper(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            try:
                trace.status = int(status[:3])
                if add_timing:
                    headers = [*headers, ("Server-Timing", server_timing(trace, _now()))]
                trace.set_response_headers(headers)
            except Exception as exc:
                report_internal_error("wsgi:start-response", exc)
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        finished = False

        def finish() -> None:
            nonlocal finished, token
            if finished:
                return
            finished = True
            trace.finish()
            if token is not None:
                try:
                    _reset(token)
                except ValueError:  # closed from another context than the one that set it
                    _set(None)
                token = None
            try:
                if trace.route is None:
                    trace.route = self.route_resolver(environ)
                if digest is not None:
                    trace.attrs["body_digest"] = digest.hexdigest()
                rt.finish_trace(trace)
            except Exception as exc:
                report_internal_error("wsgi:finish", exc)

        try:
            result = self.app(environ, start_response_wrapper)
        except BaseException as exc:
            trace.attrs["error"] = error_text(exc)
            if not trace.status:
                trace.status = 500
            finish()
            raise
        if digest is not None:
            # Digesting needs every chunk; materialise only in this (doctor) mode.
            try:
                chunks = list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            for chunk in chunks:
                digest.update(chunk)
            result = chunks
        return _ClosingIterable(result, trace, finish)

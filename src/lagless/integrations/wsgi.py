"""WSGI middleware that records one trace per request (Flask and any WSGI app).

PEP 3333 lets an application do work in three places: in the call itself, while the server
iterates the response (a generator may still query the database between chunks), and in the
iterable's ``close()``. The trace is made current for the call and again around each ``next()``
on the body, and it is finished when the body is exhausted, raises, or is closed, whichever
comes first; the application's own ``close()`` is always called (PEP 3333: servers must call
``close()``, and a middleware must pass it on).

A ``list``/``tuple`` body (what most apps return) needs no wrapper: its size is known at once and
the trace is finished before it is returned, so the common case costs one allocation less.

Written by hand rather than with a helper library because it runs on every request: the whole
budget for lagless on a request is a few microseconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
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

_END: Any = object()  # the end of a response body
_get = _current_trace.get
_set = _current_trace.set
_reset = _current_trace.reset


def environ_headers(environ: Any) -> Iterator[tuple[str, str]]:
    """Request headers out of a WSGI environ (``HTTP_*`` keys plus the two content keys), in
    the shape :class:`Trace` decodes; also used for Django's ``META``. Handed to the trace as
    the lazy source ``(environ_headers, environ)``, run only if something reads the headers."""
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            yield key[5:].replace("_", "-").lower(), value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            yield key.replace("_", "-").lower(), value


def _default_route(environ: Environ) -> str | None:
    """Frameworks (or the app itself) may leave the route template in
    ``environ["lagless.route"]``."""
    return environ.get("lagless.route")


class _Request:
    """The per-request state, and the traced body handed to the server.

    It holds the trace, the server's ``start_response`` and the finish step; as the body it
    makes the trace current around each ``next()``, counts bytes, and finishes the trace at the
    end of the body, on an error, or at ``close()``. One object with bound methods rather than
    several objects and closures: fewer allocations per request.
    """

    __slots__ = (
        "add_timing",
        "digest",
        "done",
        "environ",
        "inner",
        "iterator",
        "mw",
        "server_start_response",
        "server_write",
        "trace",
    )

    def __init__(
        self,
        mw: LaglessWSGIMiddleware,
        trace: Trace,
        environ: Environ,
        start_response: StartResponse,
        digest: Any,
    ) -> None:
        self.mw = mw
        self.trace = trace
        self.environ = environ
        self.server_start_response = start_response
        self.digest = digest
        self.add_timing: bool = mw.runtime.server_timing
        self.done = False
        self.server_write: Any = None  # what the server's start_response returned
        self.inner: Iterable[bytes] = ()
        self.iterator: Iterator[bytes] | None = None

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], Any]:
        trace = self.trace
        try:
            # PEP 3333: "200 OK". A bare "200" is taken; a status that is not one is the
            # server's to reject, recorded here as 0 rather than reported as lagless's error.
            try:
                trace.status = int(status[:3])  # a try costs nothing on the usual path
            except ValueError:
                trace.status = 0
            # The setting read once a request in __init__, and ``Trace.set_response_headers``
            # inlined: two attribute hops and a method call fewer on every response.
            if self.add_timing:
                headers = [*headers, ("Server-Timing", server_timing(trace, _now()))]
            trace._raw_response_headers = headers
            trace._response_headers = None
        except Exception as exc:
            report_internal_error("wsgi:start-response", exc)
        # PEP 3333: exc_info is passed on untouched; if the headers were already sent the
        # server re-raises it, which must reach the application unchanged.
        if exc_info is not None:
            self.server_write = self.server_start_response(status, headers, exc_info)
        else:
            self.server_write = self.server_start_response(status, headers)
        return self.write

    def write(self, data: bytes) -> Any:
        """The legacy ``write()`` callable (PEP 3333 "The write() Callable") still works; what
        goes through it counts towards the response size."""
        self.trace.response_bytes += len(data)
        if self.digest is not None:
            self.digest.update(data)
        return self.server_write(data)

    def fail(self, exc: BaseException) -> None:
        """The app raised (in the call or while its body was iterated)."""
        trace = self.trace
        try:
            trace.attrs["error"] = error_text(exc)
            if not trace.status:
                trace.status = 500
        except Exception as inner:
            report_internal_error("wsgi:fail", inner)
        self.finish()

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        trace = self.trace
        trace.duration_ns = _now() - trace.start_ns  # ``Trace.finish`` inlined (per request)
        try:
            if trace.route is None:
                trace.route = self.mw.route_resolver(self.environ)
            if self.digest is not None:
                trace.attrs["body_digest"] = self.digest.hexdigest()
            self.mw.runtime.finish_trace(trace)
        except Exception as exc:
            report_internal_error("wsgi:finish", exc)

    # -- the body ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[bytes]:
        # A generator rather than ``self``: a server's ``for`` loop then resumes a frame a
        # chunk instead of calling ``__next__`` through the type slot, and the end of the
        # body is a plain return, where ``__next__`` must raise a StopIteration the loop
        # then catches (~0.5 µs a request together, Flask bench app).
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        trace = self.trace
        digest = self.digest
        while True:
            token = _set(trace)
            try:
                it = self.iterator
                if it is None:
                    it = self.iterator = iter(self.inner)
                chunk = next(it, _END)
            except BaseException as exc:
                _reset(token)
                self.fail(exc)
                raise
            _reset(token)
            if chunk is _END:
                self.finish()
                return
            trace.response_bytes += len(chunk)
            if digest is not None:
                digest.update(chunk)
            yield chunk

    def __next__(self) -> bytes:
        """For a caller that calls ``next()`` on the body without ``iter()`` first."""
        trace = self.trace
        token = _set(trace)
        try:
            it = self.iterator
            if it is None:
                it = self.iterator = iter(self.inner)
            # ``next`` with a default: the end of the body is a return value, not a
            # StopIteration caught here and raised again (~0.5 µs a request).
            chunk = next(it, _END)
        except BaseException as exc:
            _reset(token)
            self.fail(exc)
            raise
        _reset(token)
        if chunk is _END:
            self.finish()
            raise StopIteration
        trace.response_bytes += len(chunk)
        if self.digest is not None:
            self.digest.update(chunk)
        return chunk

    def close(self) -> None:
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            self.finish()


class LaglessWSGIMiddleware:
    """Trace every request of a WSGI app.

    ``lagless.instrument(flask_app)`` uses it for you (wrapping ``flask_app.wsgi_app``, so
    ``flask_app.run()`` keeps working). For any other WSGI callable::

        application = LaglessWSGIMiddleware(application)

    ``route_resolver(environ)`` returns the route template once the request is done; the default
    reads ``environ["lagless.route"]``, which framework integrations fill in. The trace itself is
    in ``environ["lagless.trace"]`` for the app to annotate.
    """

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
        #: Set by a framework integration whose app reports a fully built body's size in
        #: the trace's ``_body_bytes`` slot (Flask): such a request ends when the app returns.
        self.complete_bodies = False

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        rt = self.runtime
        # A request already traced (this middleware applied twice, ``Lagless(app)`` plus a
        # hand-made wrapper) stays in the outer trace: one trace, one Server-Timing header.
        if not rt.enabled or _get() is not None:
            return self.app(environ, start_response)
        try:
            trace = Trace(
                environ.get("REQUEST_METHOD", "GET"),
                environ.get("PATH_INFO", "") or "/",
                _wall(),
                (environ_headers, environ),
                environ.get("QUERY_STRING", ""),
            )
            trace.attrs["framework"] = self.framework
            req = _Request(
                self,
                trace,
                environ,
                start_response,
                hashlib.blake2b(digest_size=16) if rt.body_digest else None,
            )
        except Exception as exc:  # lagless cannot trace this request; serve it untraced
            report_internal_error("wsgi:begin", exc)
            return self.app(environ, start_response)
        environ["lagless.trace"] = trace
        token = _set(trace)
        try:
            result = self.app(environ, req.start_response)
        except BaseException as exc:
            _reset(token)
            req.fail(exc)
            raise
        _reset(token)
        if self.complete_bodies and req.digest is None:
            # The framework (Flask) built the whole body before returning and said how big
            # it is: the request is complete now, whether or not anyone reads the body.
            size = trace._body_bytes
            if size >= 0:
                trace.response_bytes += size
                req.finish()
                return result
        if type(result) is list or type(result) is tuple:
            # Fully built body: count it and finish now; nothing runs after this point.
            try:
                size = 0
                digest = req.digest
                for chunk in result:
                    size += len(chunk)
                    if digest is not None:
                        digest.update(chunk)
                trace.response_bytes += size
            except Exception as exc:
                report_internal_error("wsgi:body", exc)
            req.finish()
            return result
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and isinstance(result, wrapper):
            # PEP 3333 "Optional Platform-Specific File Handling": the server recognises its
            # own file wrapper to send the file with sendfile(); wrapping it would lose that.
            # No application code runs while a file is sent, so the trace ends here.
            req.finish()
            return result
        req.inner = result
        return req

"""Pure ASGI middleware that records one trace per HTTP request, and the layer timing that
tells how long each middleware spends itself.

A plain class wrapping ``send`` (the shape of Starlette's own ``GZipMiddleware``), never
Starlette's ``BaseHTTPMiddleware``, which costs ~100 µs a request and breaks streaming and
contextvars. Non-HTTP scopes (lifespan, websocket) pass straight through.

Per request it allocates one :class:`~lagless._trace.Trace` and one closure, sets the context
variable, and at ``http.response.start`` adds the Server-Timing header; everything else (route
template, layer spans, header decoding) happens after the response is sent or when something
reads the trace. This file is hand-written rather than built on a library because it *is* the
per-request hot path: the target is at most 5 µs a request on top of a bare Starlette app.

Layer timing (issue 2, item 5), how long each middleware spends itself, lives in
:mod:`lagless.integrations._layers`; :func:`time_chain` and :class:`TimedLayer` are re-exported
here for framework integrations outside lagless.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from time import perf_counter_ns as _now
from time import time as _wall
from typing import Any, Final

from lagless._guard import report_internal_error
from lagless._runtime import Runtime, get_runtime
from lagless._server_timing import server_timing
from lagless._spans import error_text
from lagless._trace import Span, Trace, _current_trace
from lagless.integrations._layers import (
    ASGIApp,
    HandlerNamer,
    Message,
    Receive,
    Scope,
    Send,
    TimedLayer,
    _callable_name,
    _layer_spans,
    _LayeredTrace,
    layer_name,
    time_chain,
)

RouteResolver = Callable[[Scope], "str | None"]

__all__ = [
    "ASGIApp",
    "LaglessMiddleware",
    "Message",
    "Receive",
    "RouteResolver",
    "Scope",
    "Send",
    "TimedLayer",
    "default_handler_name",
    "default_route",
    "layer_name",
    "normalize_template",
    "time_chain",
]

_get = _current_trace.get
_set = _current_trace.set
_reset = _current_trace.reset

# ``{id:int}`` / ``{rest:path}`` -> ``{id}`` / ``{rest}``: Starlette and Litestar write the
# convertor into the template; lagless reports one spelling so traces group across frameworks.
_CONVERTOR: Final = re.compile(r"\{([^{}:]+):[^{}]*\}")
_normalized: dict[str, str] = {}
_NORMALIZED_MAX: Final = 4096

# Body messages after which the response is complete: ``more_body`` false on a body, or the
# path-send extension (which carries the whole file).
_PATHSEND: Final = "http.response.pathsend"


def normalize_template(template: str) -> str:
    """``/users/{id:int}`` -> ``/users/{id}`` (cached: templates are few and repeat)."""
    hit = _normalized.get(template)
    if hit is not None:
        return hit
    out = _CONVERTOR.sub(r"{\1}", template) if ":" in template else template
    if len(_normalized) < _NORMALIZED_MAX:
        _normalized[template] = out
    return out


def default_route(scope: Scope) -> str | None:
    """The route template from what the framework's router left in the scope.

    Starlette and FastAPI (the versions that set it) put the matched route object in
    ``scope["route"]``; Litestar puts ``scope["path_template"]``. Failing both, the template is
    rebuilt from the path by putting each path parameter's name back in place of its value,
    which is right for the usual ``/items/{id}`` shapes. ``None`` when no route matched.
    """
    route = scope.get("route")
    if route is not None:
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if isinstance(template, str):
            return normalize_template(template)
    template = scope.get("path_template")
    if isinstance(template, str):
        return normalize_template(template)
    params = scope.get("path_params")
    if params is None:
        return None
    path: str = scope.get("path", "")
    if not params:
        return path
    segments = path.split("/")
    for name, value in params.items():
        text = str(value)
        for i, seg in enumerate(segments):
            if seg == text:
                segments[i] = "{" + name + "}"
                break
    return "/".join(segments)


# id(endpoint) -> (endpoint, name); the endpoint is kept so an id is never reused.
_handler_names: dict[int, tuple[Any, str]] = {}


def default_handler_name(scope: Scope) -> str:
    """The endpoint's qualified name: Starlette/FastAPI leave it in ``scope["endpoint"]``,
    Litestar leaves its route handler (whose ``fn`` is the user's function) in
    ``scope["route_handler"]``. ``<unmatched>`` when no route matched."""
    key = scope.get("endpoint") or scope.get("route_handler")
    if key is None:
        return "<unmatched>"
    hit = _handler_names.get(id(key))
    if hit is not None and hit[0] is key:
        return hit[1]
    name = _handler_name(scope)
    if len(_handler_names) < _NORMALIZED_MAX:
        _handler_names[id(key)] = (key, name)
    return name


def _handler_name(scope: Scope) -> str:
    name = _callable_name(scope.get("endpoint"))
    if name is not None:
        return name
    handler = scope.get("route_handler")
    if handler is not None:
        name = _callable_name(getattr(handler, "fn", None)) or _callable_name(handler)
        if name is not None:
            return name
    return "<unmatched>"


class LaglessMiddleware:
    """Trace every HTTP request of an ASGI app (FastAPI, Starlette, Litestar, Quart...).

    Prefer ``app = lagless.instrument(app)``, which picks this middleware, installs the driver
    integrations, times the middleware layers and teaches it the framework's router. Used
    directly::

        app = LaglessMiddleware(app)

    ``timed_layers`` says that ``app``'s chain contains :class:`TimedLayer` links (see
    :func:`time_chain`), so requests collect layer timings while ``middleware_timing`` is on.
    ``time_app`` instead times all of ``app`` as the ``handler`` span: right for an app with no
    user middleware, whose framework layers around the endpoint take a microsecond or two,
    and ~0.7 µs a request cheaper than a timed link.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        runtime: Runtime | None = None,
        route_resolver: RouteResolver | None = None,
        framework: str = "asgi",
        handler_name: HandlerNamer | None = None,
        timed_layers: bool = False,
        time_app: bool = False,
    ) -> None:
        self.app = app
        self.runtime = runtime or get_runtime()
        self.route_resolver: RouteResolver = route_resolver or default_route
        self.handler_name: HandlerNamer = handler_name or default_handler_name
        self.framework = framework
        self.timed_layers = timed_layers
        self.time_app = time_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rt = self.runtime
        # A request already traced (an instrumented sub-app, an in-process call from a
        # handler) stays in the outer trace.
        if scope["type"] != "http" or not rt.enabled or _get() is not None:
            await self.app(scope, receive, send)
            return
        trace: Trace
        layered: _LayeredTrace | None = None
        time_app = False
        sent = 0  # ns the server's send took for streamed chunks (time_app only)
        if self.timed_layers and rt.middleware_timing:
            trace = layered = _LayeredTrace(
                scope["method"],
                scope["path"],
                _wall(),
                scope.get("headers"),
            )
            layered.layers = layered.handler = layered.error = None
            layered.depth = layered.sent = 0
        else:
            trace = Trace(
                scope["method"],
                scope["path"],
                _wall(),
                scope.get("headers"),
            )
            time_app = self.time_app and rt.middleware_timing
        trace.attrs["framework"] = self.framework
        if rt.loop_lag_probe:
            # Diagnosis mode only (lagless doctor): measure event-loop lag during requests.
            from lagless._loop_lag import ensure_probe

            ensure_probe(rt)
        token = _set(trace)
        add_timing = rt.server_timing
        digest = hashlib.blake2b(digest_size=16) if rt.body_digest else None

        async def send_wrapper(message: Message) -> None:
            nonlocal sent
            mtype = message["type"]
            if mtype == "http.response.body":
                body = message.get("body", b"")
                trace.response_bytes += len(body)
                if digest is not None:
                    digest.update(body)
                if message.get("more_body", False):
                    if layered is None and not time_app:
                        await send(message)
                        return
                    # A streamed chunk may wait on a slow client (flow control): that wait
                    # is the server's, and timed layers leave it out of their time.
                    t0 = _now()
                    try:
                        await send(message)
                    finally:
                        if layered is not None:
                            layered.sent += _now() - t0
                        else:
                            sent += _now() - t0
                    return
                # The response is complete once its last chunk is sent; work after it
                # (background tasks) is not the client's latency. (``Trace.finish`` inlined,
                # as is ``set_response_headers`` below: a method call each, per request.)
                await send(message)
                trace.duration_ns = _now() - trace.start_ns
                return
            if mtype == "http.response.start":
                try:
                    trace.status = message["status"]
                    headers = message.get("headers") or []
                    if add_timing:
                        # Copied, never appended in place: the list may belong to a response
                        # object that is sent again (a module-level constant response).
                        headers = [*headers, (b"server-timing", _timing_value(trace))]
                        message = {**message, "headers": headers}
                    trace._raw_response_headers = headers
                    trace._response_headers = None
                except Exception as exc:
                    report_internal_error("asgi:response-start", exc)
            await send(message)
            if mtype == _PATHSEND:
                trace.finish()

        app_start = _now() if time_app else 0
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            trace.attrs["error"] = error_text(exc)
            if not trace.status:
                trace.status = 500
            raise
        finally:
            if not trace.duration_ns:
                trace.finish()
            _reset(token)
            try:
                if time_app:
                    own = _now() - app_start - sent
                    name = self.handler_name(scope)
                    trace.spans.append(Span("handler", name, app_start, own if own > 0 else 0))
                if trace.route is None:
                    trace.route = self.route_resolver(scope)
                if rt.loop_lag_probe:
                    trace.attrs["async_handler"] = _is_async_endpoint(scope)
                if layered is not None:
                    error = layered.error
                    if error is not None and trace.status >= 500 and "error" not in trace.attrs:
                        trace.attrs["error"] = error_text(error)
                    layered.error = None
                    _layer_spans(layered, scope, self.handler_name)
                if digest is not None:
                    trace.attrs["body_digest"] = digest.hexdigest()
                rt.finish_trace(trace)
            except Exception as exc:
                report_internal_error("asgi:finish", exc)


# id(endpoint) -> (endpoint, is_async); the endpoint is kept so a reused id (an endpoint
# object that was garbage-collected) is never mistaken for it.
_async_endpoints: dict[int, tuple[Any, bool]] = {}
_ASYNC_ENDPOINTS_MAX: Final = 10_000


def _is_async_endpoint(scope: Scope) -> bool | None:
    """Whether the matched endpoint is a coroutine function (it then runs on the event loop, so
    a blocking call inside it stalls every request); ``None`` when the router left no endpoint.
    Cached by identity: the check walks ``functools.partial`` and ``__call__``."""
    endpoint = scope.get("endpoint")
    if endpoint is None:
        route = scope.get("route_handler")  # Litestar
        endpoint = getattr(route, "fn", None)
    if endpoint is None:
        return None
    key = id(endpoint)
    hit = _async_endpoints.get(key)
    if hit is not None and hit[0] is endpoint:
        return hit[1]
    import inspect

    target = endpoint
    while isinstance(target, functools.partial):
        target = target.func
    known = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        type(target).__call__
    )
    if len(_async_endpoints) < _ASYNC_ENDPOINTS_MAX:
        _async_endpoints[key] = (endpoint, known)
    return known


def _timing_value(trace: Trace) -> bytes:
    """The Server-Timing value as bytes.

    The common case, no span recorded before the headers go out, is formatted here directly
    as bytes (one ``%`` format, ~0.3 µs, where the general path costs ~0.7 µs); anything
    else goes through :func:`lagless._server_timing.server_timing`.
    """
    now = _now()
    spans = trace.spans
    if not spans:
        ms, frac = divmod((now - trace.start_ns) // 10_000, 100)
        return b"app;dur=%d.%02d, total;dur=%d.%02d" % (ms, frac, ms, frac)
    # The next most common case, only queries before the headers and none overlapping, is
    # summed here and formatted straight to bytes, the same text as ``server_timing`` (a
    # test checks): no second function call, no per-kind dispatch, no ``str.encode``.
    # One db span: ~1.0 -> ~0.55 µs CPU (micro-benchmark; ~3x that inside a request).
    db = 0
    io_end = 0
    for span in spans:
        start = span.start_ns
        if span.kind != "db" or start < io_end:
            return server_timing(trace, now).encode("latin-1")
        dur = span.duration_ns
        io_end = start + dur
        db += dur
    total = now - trace.start_ns
    app = total - db
    n = len(spans)
    return b'db;dur=%.2f;desc="%d quer%s", app;dur=%.2f, total;dur=%.2f' % (
        db / 1e6,
        n,
        b"y" if n == 1 else b"ies",
        (app if app > 0 else 0) / 1e6,
        total / 1e6,
    )

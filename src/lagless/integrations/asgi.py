"""Pure ASGI middleware that records one trace per HTTP request.

A plain class wrapping ``send`` (the shape of Starlette's own ``GZipMiddleware``), never
Starlette's ``BaseHTTPMiddleware``, which costs ~100 µs a request and breaks streaming and
contextvars. Non-HTTP scopes (lifespan, websocket) pass straight through.

Per request it allocates one :class:`~lagless._trace.Trace` and one closure, sets the context
variable, and at ``http.response.start`` adds the Server-Timing header; everything else (route
template, header decoding) is deferred until something reads the trace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter_ns as _now
from time import time as _wall
from typing import Any

from lagless._guard import report_internal_error
from lagless._runtime import Runtime, get_runtime
from lagless._server_timing import server_timing
from lagless._spans import error_text
from lagless._trace import Trace, _current_trace

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RouteResolver = Callable[[Scope], "str | None"]

_set = _current_trace.set
_reset = _current_trace.reset


def default_route(scope: Scope) -> str | None:
    """The route template from what the framework's router left in the scope.

    FastAPI (and Starlette >= 0.? routers that set it) put the matched route object in
    ``scope["route"]``; Litestar puts ``scope["path_template"]``. Failing both, the template is
    rebuilt from the path by putting each path parameter's name back in place of its value,
    which is right for the usual ``/items/{id}`` shapes. ``None`` when no route matched.
    """
    route = scope.get("route")
    if route is not None:
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if isinstance(template, str):
            return template
    template = scope.get("path_template")
    if isinstance(template, str):
        return template
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


class LaglessMiddleware:
    """Trace every HTTP request of an ASGI app (FastAPI, Starlette, Litestar, Quart...).

    Prefer ``app = lagless.instrument(app)``, which picks this middleware, installs the driver
    integrations and teaches it the framework's router. Used directly::

        app = LaglessMiddleware(app)
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        runtime: Runtime | None = None,
        route_resolver: RouteResolver | None = None,
        framework: str = "asgi",
    ) -> None:
        self.app = app
        self.runtime = runtime or get_runtime()
        self.route_resolver: RouteResolver = route_resolver or default_route
        self.framework = framework

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rt = self.runtime
        if scope["type"] != "http" or not rt.enabled:
            await self.app(scope, receive, send)
            return
        trace = Trace(
            scope["method"],
            scope["path"],
            start_time=_wall(),
            request_headers=scope.get("headers"),
        )
        trace.attrs["framework"] = self.framework
        token = _set(trace)
        add_timing = rt.server_timing
        digest = hashlib.blake2b(digest_size=16) if rt.body_digest else None

        async def send_wrapper(message: Message) -> None:
            mtype = message["type"]
            if mtype == "http.response.body":
                body = message.get("body", b"")
                trace.response_bytes += len(body)
                if digest is not None:
                    digest.update(body)
            elif mtype == "http.response.start":
                try:
                    trace.status = message["status"]
                    headers = message.get("headers") or []
                    if add_timing:
                        headers = list(headers)
                        headers.append((b"server-timing", server_timing(trace, _now()).encode()))
                        message = {**message, "headers": headers}
                    trace.set_response_headers(headers)
                except Exception as exc:
                    report_internal_error("asgi:response-start", exc)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            trace.attrs["error"] = error_text(exc)
            if not trace.status:
                trace.status = 500
            raise
        finally:
            trace.finish()
            _reset(token)
            try:
                if trace.route is None:
                    trace.route = self.route_resolver(scope)
                if digest is not None:
                    trace.attrs["body_digest"] = digest.hexdigest()
                rt.finish_trace(trace)
            except Exception as exc:
                report_internal_error("asgi:finish", exc)

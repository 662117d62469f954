"""Tracing for Starlette and FastAPI applications: ``lagless.instrument(app)``.

The app object itself is returned, so ``@app.get``, ``app.include_router``, ``uvicorn
module:app`` and ``TestClient(app)`` keep working. Lagless becomes the outermost layer of the
app's middleware stack (outside ``ServerErrorMiddleware``, so a 500 is traced with its status),
by wrapping the instance's ``build_middleware_stack``: Starlette builds the stack on the first
request, so middleware added after ``instrument`` is still included.

Route templates come from the router: the matched route object in ``scope["route"]``, mapped
once to its full template (``Mount`` and ``include_router`` prefixes included) by walking the
route tree, with ``scope["endpoint"]`` as the key for Starlette versions that do not set
``scope["route"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Host, Mount

from lagless._runtime import Runtime
from lagless.integrations.asgi import (
    ASGIApp,
    LaglessMiddleware,
    Scope,
    TimedLayer,
    layer_name,
    normalize_template,
    time_chain,
)

__all__ = ["StarletteRoutes", "instrument_starlette"]

AppT = TypeVar("AppT", bound=Starlette)


class StarletteRoutes:
    """Resolves a request's route template from what Starlette's router left in the scope.

    The route tree is walked once (again only when the number of top-level routes changes)
    into a map from route object, and from endpoint, to the full template; per request the
    cost is one dictionary lookup. A ``Mount`` whose inner router found nothing is a 404:
    ``None``. A ``Mount`` of a plain ASGI app (static files) is ``/prefix/{path}``.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        # id(object) -> (object, template); the object is kept so an id is never reused.
        self._by_route: dict[int, tuple[Any, str | None]] = {}
        self._by_endpoint: dict[int, tuple[Any, str | None]] = {}
        self._size = -1

    def __call__(self, scope: Scope) -> str | None:
        route = scope.get("route")
        key = route if route is not None else scope.get("endpoint")
        if key is None:
            return None
        hit = (self._by_route if route is not None else self._by_endpoint).get(id(key))
        if hit is None or hit[0] is not key:
            size = len(self.app.router.routes)
            if size != self._size:
                self._rebuild(size)
                table = self._by_route if route is not None else self._by_endpoint
                hit = table.get(id(key))
            if hit is None or hit[0] is not key:
                # A route the walk cannot see (inside a wrapped sub-app): its own template.
                template = getattr(route, "path_format", None)
                return normalize_template(template) if isinstance(template, str) else None
        return hit[1]

    def _rebuild(self, size: int) -> None:
        by_route: dict[int, tuple[Any, str | None]] = {}
        by_endpoint: dict[int, tuple[Any, str | None]] = {}
        self._walk(self.app.router.routes, "", by_route, by_endpoint, 0)
        self._by_route, self._by_endpoint, self._size = by_route, by_endpoint, size

    def _walk(
        self,
        routes: Any,
        prefix: str,
        by_route: dict[int, tuple[Any, str | None]],
        by_endpoint: dict[int, tuple[Any, str | None]],
        depth: int,
    ) -> None:
        if depth > 32:  # a mount cycle
            return
        for route in routes:
            if isinstance(route, Mount):
                mount_prefix = prefix + normalize_template(route.path)
                inner = route.routes
                if inner:
                    # The mount itself in scope["route"] means its router matched nothing.
                    by_route.setdefault(id(route), (route, None))
                    self._walk(inner, mount_prefix, by_route, by_endpoint, depth + 1)
                else:
                    # A mounted ASGI app (static files, a sub-application without routes):
                    # routers that do not set scope["route"] leave the app as the endpoint.
                    template = mount_prefix + "/{path}"
                    by_route.setdefault(id(route), (route, template))
                    by_endpoint.setdefault(id(route.app), (route.app, template))
            elif isinstance(route, Host):
                self._walk(route.routes, prefix, by_route, by_endpoint, depth + 1)
            else:
                path = getattr(route, "path_format", None) or getattr(route, "path", None)
                if not isinstance(path, str):
                    continue
                template = prefix + normalize_template(path)
                by_route.setdefault(id(route), (route, template))
                endpoint = getattr(route, "endpoint", None)
                if endpoint is not None:
                    by_endpoint.setdefault(id(endpoint), (endpoint, template))


def _timed_factory(cls: Any, router: Any) -> Callable[..., TimedLayer]:
    """A stand-in for a user middleware class while the stack is built: it builds the real
    middleware, times it, and times the app inside it, whatever attribute the middleware
    keeps that app in (so the walk in :func:`time_chain` can go on below it)."""

    def build(app: ASGIApp, *args: Any, **kwargs: Any) -> TimedLayer:
        inner = app
        if not isinstance(app, TimedLayer):
            inner = (
                TimedLayer(app, kind="handler")
                if app is router
                else TimedLayer(app, name=layer_name(app))
            )
        layer = cls(inner, *args, **kwargs)
        return TimedLayer(layer, name=layer_name(layer), hint=inner)

    return build


def _build_timed(app: Starlette, original: Callable[[], ASGIApp]) -> ASGIApp:
    """``app``'s stack built by Starlette's own ``build_middleware_stack`` (``original``), with
    each user middleware class standing in as its timed factory for the build only."""
    user = list(app.user_middleware)
    if not user:
        return original()
    router = app.router
    app.user_middleware = [
        Middleware(_timed_factory(m.cls, router), *m.args, **m.kwargs) for m in user
    ]
    try:
        return original()
    finally:
        app.user_middleware = user


def _mounted_apps(routes: Any, depth: int = 0) -> list[Starlette]:
    """The Starlette (and FastAPI) applications mounted anywhere under ``routes``: each is a
    middleware stack of its own inside the outer app's router."""
    found: list[Starlette] = []
    if depth > 32:  # a mount cycle
        return found
    for route in routes:
        if isinstance(route, Mount):
            inner = getattr(route, "app", None)
            if isinstance(inner, Starlette):
                found.append(inner)
                found.extend(_mounted_apps(inner.router.routes, depth + 1))
            else:
                found.extend(_mounted_apps(getattr(route, "routes", None) or (), depth + 1))
        elif isinstance(route, Host):
            found.extend(_mounted_apps(route.routes, depth + 1))
    return found


def _time_mounted(sub: Starlette) -> bool:
    """Time a mounted app's own middleware as ``middleware`` spans of the outer request (no
    second trace: the outer app's lagless layer owns it). Returns whether ``sub`` has
    middleware to time. Idempotent; an app instrumented on its own already times its layers
    (its lagless layer passes an outer trace through)."""
    if getattr(sub, "__lagless_instrumented__", False) or getattr(
        sub, "__lagless_mounted__", False
    ):
        return bool(sub.user_middleware)
    original = sub.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        if not sub.user_middleware:
            return original()
        timed: ASGIApp = time_chain(_build_timed(sub, original), stop=sub.router)
        return timed

    sub.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    sub.middleware_stack = None
    sub.__lagless_mounted__ = True  # type: ignore[attr-defined]
    return bool(sub.user_middleware)


def instrument_starlette(app: AppT, *, runtime: Runtime) -> AppT:
    """Trace every request of a Starlette or FastAPI ``app`` and return the same object.

    >>> app = FastAPI()
    >>> app = lagless.instrument(app)   # the same FastAPI object, now traced

    With user middleware, each middleware (and Starlette's own layers) is timed as a
    ``middleware`` span of its own time, and the router with the endpoint as the ``handler``
    span. Without, the ``handler`` span is the whole app inside lagless: Starlette's
    exception layers around the endpoint add a microsecond or two, and timing them apart would
    cost more than that on every request. Idempotent.
    """
    if getattr(app, "__lagless_instrumented__", False):
        return app
    original = app.build_middleware_stack
    routes = StarletteRoutes(app)

    def build_middleware_stack() -> ASGIApp:
        router = app.router
        full = bool(app.user_middleware)
        # Mounted sub-applications (``app.mount("/v1", sub_api)``) have stacks of their own,
        # built on their first request; their middleware is timed inside this request's
        # trace, which then has to collect layers even when the outer app has none.
        timed = [_time_mounted(sub) for sub in _mounted_apps(router.routes)]  # every one
        if any(timed):
            full = True
        stack = _build_timed(app, original)
        if full:
            stack = time_chain(stack, stop=router)
        return LaglessMiddleware(
            stack,
            runtime=runtime,
            route_resolver=routes,
            framework="fastapi" if _is_fastapi(app) else "starlette",
            timed_layers=full,
            time_app=not full,
        )

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    # Built lazily on the next request, now with lagless outermost.
    app.middleware_stack = None
    app.__lagless_instrumented__ = True  # type: ignore[attr-defined]
    return app


def _is_fastapi(app: Any) -> bool:
    return any(cls.__module__.startswith("fastapi") for cls in type(app).__mro__)

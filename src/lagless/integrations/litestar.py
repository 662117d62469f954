"""Tracing for Litestar applications: ``lagless.instrument(app)``.

The app object itself is returned (``uvicorn module:app`` and Litestar's ``TestClient`` keep
working). Litestar's ``__call__`` hands every HTTP request to the instance's ``asgi_handler``
(its exception handling wrapped around the router), so lagless wraps that attribute: it sits
outside Litestar's exception middleware and sees the 500s it produces. Lifespan events go to
Litestar's router directly and never reach lagless.

Route templates come from the router (``scope["path_template"]``, ``/users/{user_id}``; a
convertor suffix such as ``{user_id:int}`` is dropped). Litestar builds one middleware stack per
route handler when routes are registered; each stack in the routing trie is timed, its
middleware as ``middleware`` spans and the route's handler as the ``handler`` span.
"""

from __future__ import annotations

from typing import Any, TypeVar

from lagless._runtime import Runtime
from lagless.integrations._layers import _inner_link
from lagless.integrations.asgi import (
    LaglessMiddleware,
    Scope,
    normalize_template,
    time_chain,
)

__all__ = ["instrument_litestar", "litestar_route"]

AppT = TypeVar("AppT")


def litestar_route(scope: Scope) -> str | None:
    """The template Litestar's router matched, or ``None`` (a 404 never sets one).

    No fallback from ``path_params``: Litestar sets that key on every request, matched or not.
    """
    template = scope.get("path_template")
    if isinstance(template, str) and template:
        return normalize_template(template)
    return None


def _trie_nodes(router: Any) -> list[Any]:
    """Every node of Litestar's routing trie (plain and mount routes included), once each."""
    seen: set[int] = set()
    out: list[Any] = []
    stack: list[Any] = [getattr(router, "root_route_map_node", None)]
    for table in ("_plain_routes", "_mount_routes"):
        extra = getattr(router, table, None)
        if isinstance(extra, dict):
            stack.extend(extra.values())
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen or not hasattr(node, "asgi_handlers"):
            continue
        seen.add(id(node))
        out.append(node)
        stack.extend(getattr(node, "children", {}).values())
    return out


def _time_routes(router: Any, *, full: bool) -> int:
    """Time the middleware stack of every route handler in the trie; how many were timed.

    ``full`` times every link even of a route without middleware, which the own-time
    arithmetic needs when the layers above the router are timed too.
    """
    timed = 0
    for node in _trie_nodes(router):
        handlers = node.asgi_handlers
        for key, entry in list(handlers.items()):
            stack = entry.asgi_app
            # A handler with middleware has a chain worth timing link by link; a bare one
            # only needs its handler span.
            new_stack = time_chain(stack, full=full or _inner_link(stack)[0] is not None)
            if new_stack is not stack:
                handlers[key] = entry._replace(asgi_app=new_stack)
            timed += 1
    cached = getattr(router, "handle_routing", None)
    clear = getattr(cached, "cache_clear", None)
    if clear is not None:
        clear()  # the router caches (path, method) -> stack lookups
    return timed


def instrument_litestar(app: AppT, *, runtime: Runtime) -> AppT:
    """Trace every request of a Litestar ``app`` and return the same object.

    >>> app = Litestar(route_handlers=[get_user])
    >>> app = lagless.instrument(app)

    Routes registered after this call (``app.register``) are traced but their middleware is
    not timed. Idempotent.
    """
    target: Any = app
    # Litestar objects have __slots__, so the mark is the handler itself.
    if isinstance(target.asgi_handler, LaglessMiddleware):
        return app
    router = target.asgi_router
    # The app-level chain above the router (exception handling, CORS): timed too when it
    # holds more than Litestar's own exception handler.
    outer_full = getattr(target, "cors_config", None) is not None
    _time_routes(router, full=outer_full)
    outer = time_chain(target.asgi_handler, stop=router, time_stop=False, full=outer_full)
    target.asgi_handler = LaglessMiddleware(
        outer,
        runtime=runtime,
        route_resolver=litestar_route,
        framework="litestar",
        timed_layers=True,
    )
    return app

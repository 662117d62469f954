"""Layer timing: how long each middleware of a chain spends itself (issue 2, item 5).

:func:`time_chain` puts a :class:`TimedLayer` around each link of a middleware chain (found
through ``.app`` or a closure's ``app``). A layer's *own* time is its time minus the time of the
layer inside it, and minus the time its ``send`` calls spend outside it (in outer layers and the
server), so a compressing middleware's work in its ``send`` wrapper is charged to it, not to the
handler. Records go on a :class:`_LayeredTrace` and become ``middleware``/``handler`` spans in
:func:`_layer_spans` once the response is sent.

Hand-written: each timed link is on every request's path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter_ns as _now
from typing import Any

from lagless._trace import Span, Trace, _current_trace

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
HandlerNamer = Callable[[Scope], str]

_get = _current_trace.get


def _callable_name(fn: Any) -> str | None:
    if fn is None:
        return None
    while hasattr(fn, "func") and not hasattr(fn, "__qualname__"):  # functools.partial
        fn = fn.func
    name = getattr(fn, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(fn).__qualname__


def layer_name(layer: Any) -> str:
    """What a middleware span is called: the middleware's class name.

    A ``BaseHTTPMiddleware`` built from a function (``@app.middleware("http")``) is named
    ``BaseHTTPMiddleware(func)``; a function middleware (Litestar's ``ASGIMiddleware`` returns a
    closure) is named after the class whose method it closes over, else the factory function.
    """
    if isinstance(layer, TimedLayer):
        layer = layer.app
    dispatch = getattr(layer, "dispatch_func", None)
    cls = type(layer)
    if dispatch is not None and getattr(dispatch, "__self__", None) is not layer:
        return f"{cls.__name__}({_callable_name(dispatch)})"
    code = getattr(layer, "__code__", None)
    if code is not None:
        for cell in getattr(layer, "__closure__", None) or ():
            try:
                owner = getattr(cell.cell_contents, "__self__", None)
            except ValueError:  # an empty cell
                continue
            if owner is not None:
                return type(owner).__name__
        # ``outer.<locals>.factory.<locals>.middleware`` -> ``factory``
        qualname: str = getattr(layer, "__qualname__", code.co_name)
        return qualname.rsplit(".<locals>.", 1)[0].rsplit(".<locals>.", 1)[-1]
    return cls.__name__


class _LayeredTrace(Trace):
    """A trace that also collects layer timings (only when ``middleware_timing`` is on and the
    app's chain was timed). ``layers`` holds ``(layer, start_ns, own_ns, depth)`` records;
    ``depth`` is how many timed layers the request is inside right now."""

    __slots__ = ("depth", "error", "handler", "handler_own", "handler_start", "layers", "sent")

    layers: list[tuple[TimedLayer, int, int, int]] | None
    depth: int
    #: Nanoseconds spent in the server's ``send`` of streamed chunks so far.
    sent: int
    # The one timed layer of a bare app (the endpoint), kept in slots rather than a record
    # list: this is every request's path.
    handler: TimedLayer | None
    handler_start: int
    handler_own: int
    #: The first exception seen leaving a timed layer: frameworks that turn exceptions into
    #: 500 responses themselves (Litestar) never let the middleware see it.
    error: BaseException | None


class TimedLayer:
    """Wraps one link of a middleware chain and measures the time spent inside it, less the
    time its outgoing ``send`` calls take (those run in outer layers and the server).

    Does nothing but forward the call unless the current request's trace collects layer
    timings, so it can stay in the chain when ``middleware_timing`` is switched off.
    ``name`` ``None`` means "the endpoint", named per request from the scope.
    """

    __slots__ = ("app", "hint", "kind", "name", "own_send")

    def __init__(
        self,
        app: ASGIApp,
        *,
        kind: str = "middleware",
        name: str | None = None,
        hint: Any = None,
        own_send: bool = True,
    ) -> None:
        self.app = app
        self.kind = kind
        self.name = name
        #: Wrap ``send`` to time the calls going out of this layer. Needed when layers above
        #: may work in their send wrappers (GZip); without it, the time outside is what the
        #: server's own send took, which costs less (no extra coroutine per message).
        self.own_send = own_send
        #: The next link inside ``app``, when ``app`` does not expose it as ``.app``.
        self.hint = hint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        trace = _get()
        if trace is None or type(trace) is not _LayeredTrace:
            await self.app(scope, receive, send)
            return
        if not self.own_send:
            # Time outside is what the server's send took for streamed chunks (counted by
            # LaglessMiddleware; other sends return at once unless the client is slow):
            # right when the layers in between do next to nothing in their send wrappers.
            sent_before = trace.sent
            start = _now()
            try:
                await self.app(scope, receive, send)
            except BaseException as exc:
                if trace.error is None:
                    trace.error = exc
                raise
            finally:
                own = _now() - start - (trace.sent - sent_before)
                if trace.handler is None:
                    trace.handler, trace.handler_start, trace.handler_own = self, start, own
                else:
                    trace.handler_own += own
            return
        depth = trace.depth
        trace.depth = depth + 1
        sent = 0

        async def timed_send(message: Message) -> None:
            nonlocal sent
            t0 = _now()
            try:
                await send(message)
            finally:
                sent += _now() - t0

        start = _now()
        try:
            await self.app(scope, receive, timed_send)
        except BaseException as exc:
            if trace.error is None:
                trace.error = exc
            raise
        finally:
            trace.depth = depth
            record = (self, start, _now() - start - sent, depth)
            if trace.layers is None:
                trace.layers = [record]
            else:
                trace.layers.append(record)

    def __repr__(self) -> str:
        return f"TimedLayer({self.kind}, {self.name or '<endpoint>'})"


def _inner_link(node: Any) -> tuple[Any, Callable[[Any], None] | None]:
    """The next link inside ``node`` and a way to replace it, or ``(None, None)``.

    Middleware classes keep the next app as ``.app`` (Starlette's and Litestar's convention);
    function middleware close over a variable named ``app``.
    """
    if isinstance(node, type) or hasattr(node, "__self__"):  # a class or a bound method
        return None, None
    inner = getattr(node, "app", None)
    if inner is not None and callable(inner):

        def set_attr(value: Any) -> None:
            node.app = value

        return inner, set_attr
    code = getattr(node, "__code__", None)
    closure = getattr(node, "__closure__", None)
    if code is not None and closure and "app" in code.co_freevars:
        cell = closure[code.co_freevars.index("app")]
        try:
            inner = cell.cell_contents
        except ValueError:
            return None, None
        if callable(inner):

            def set_cell(value: Any) -> None:
                cell.cell_contents = value

            return inner, set_cell
    return None, None


def time_chain(
    top: Any,
    *,
    stop: Any = None,
    time_stop: bool = True,
    full: bool = True,
    max_links: int = 64,
) -> Any:
    """Put a :class:`TimedLayer` around the links of the middleware chain that starts at
    ``top`` and return the (possibly new) top.

    The walk follows ``.app`` (or a closure's ``app``) down to ``stop`` (the router) or to the
    first link with nothing inside (the endpoint). The innermost link is timed as the
    ``handler``; with ``full``, every link above it is timed as ``middleware`` too. Without
    ``full`` only the handler is timed, which is what a bare app needs: its framework layers
    do next to nothing, and each timed link costs ~0.5 µs a request. ``time_stop=False``
    leaves ``stop`` itself untimed (Litestar's router, whose routes are timed one by one).
    """
    # links[i] is a link; setters[i] replaces links[i] inside links[i - 1]; timed[i] says
    # it was reached through a TimedLayer already wrapping it.
    links: list[Any] = []
    setters: list[Callable[[Any], None] | None] = []
    timed: list[bool] = []
    node: Any = top
    setter: Callable[[Any], None] | None = None
    hint: Any = None
    through_timed = False
    for _ in range(max_links):
        if isinstance(node, TimedLayer):
            # Already timed (a user middleware wrapped when it was built): look inside it.
            hint, through_timed = node.hint, True
            node, setter = node.app, None
            continue
        links.append(node)
        setters.append(setter)
        timed.append(through_timed)
        through_timed = False
        if node is stop:
            break
        inner, setter = _inner_link(node)
        if inner is None and hint is not None:
            inner, setter = hint, None
        hint = None
        if inner is None or inner is node:
            break
        node = inner
    if not links:
        return top
    bottom = len(links) - 1
    reached_stop = stop is not None and links[bottom] is stop
    if reached_stop and not time_stop:
        bottom -= 1
        handler_at_bottom = False
    else:
        handler_at_bottom = stop is None or reached_stop
    new_top = top
    for i in range(bottom, -1, -1):
        link = links[i]
        is_handler = handler_at_bottom and i == bottom
        if timed[i] or not (full or is_handler):
            continue
        shim = (
            TimedLayer(link, kind="handler", own_send=full)
            if is_handler
            else TimedLayer(link, name=layer_name(link))
        )
        if i == 0:
            new_top = shim
        else:
            set_link = setters[i]
            if set_link is not None:
                set_link(shim)
    return new_top


def _layer_spans(trace: _LayeredTrace, scope: Scope, handler_name: HandlerNamer) -> None:
    """Turn the layer records into ``middleware`` and ``handler`` spans of own time.

    A layer called several times (a retrying middleware) gets one span with the sum. The
    time of the layers one level deeper is taken off in proportion when several layers share
    a depth (which a plain chain never does).
    """
    handler = trace.handler
    if handler is not None:
        # The bare app's case: only the endpoint is timed, outside any record list.
        own = trace.handler_own
        name = handler.name if handler.name is not None else handler_name(scope)
        trace.spans.append(Span(handler.kind, name, trace.handler_start, own if own > 0 else 0))
        trace.handler = None
    records = trace.layers
    if not records:
        return
    trace.layers = None
    per_layer: dict[int, list[Any]] = {}
    depth_total: dict[int, int] = {}
    for layer, start, own, depth in records:
        depth_total[depth] = depth_total.get(depth, 0) + own
        acc = per_layer.get(id(layer))
        if acc is None:
            per_layer[id(layer)] = [layer, start, own, depth]
        else:
            acc[1] = min(acc[1], start)
            acc[2] += own
    # A mounted sub-application's router is a second ``handler`` link inside the outer one
    # (starlette.py, ``_time_mounted``): only the deepest is the endpoint; an outer one's own
    # time is routing into the mount, reported as the ``Router`` layer.
    deepest = max((a[3] for a in per_layer.values() if a[0].kind == "handler"), default=-1)
    for layer, start, own, depth in sorted(per_layer.values(), key=lambda a: a[3]):
        below = depth_total.get(depth + 1, 0)
        if below:
            total = depth_total[depth]
            own -= below if total == own else (below * own // total if total > 0 else 0)
        kind = layer.kind
        if kind == "handler" and depth < deepest:
            trace.add_span("middleware", "Router", start, start + max(own, 0))
            continue
        name = layer.name if layer.name is not None else handler_name(scope)
        trace.add_span(kind, name, start, start + max(own, 0))

"""The framework-neutral ASGI middleware, driven by raw ASGI calls: scopes it must leave alone,
streaming, errors, and the layer-timing arithmetic on hand-built chains with a fake clock."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import lagless
import lagless.integrations.asgi as asgi_mod
from lagless._runtime import Runtime
from lagless._trace import _current_trace
from lagless.integrations.asgi import (
    LaglessMiddleware,
    TimedLayer,
    default_handler_name,
    default_route,
    layer_name,
    normalize_template,
    time_chain,
)
from tests.integrations.asgi.conftest import FakeClock, assert_server_timing

Message = dict[str, Any]


def http_scope(path: str = "/items/7", method: str = "GET", **extra: Any) -> dict[str, Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"user-agent", b"pytest")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    scope.update(extra)
    return scope


async def call(
    app: Any, scope: dict[str, Any], inbound: list[Message] | None = None
) -> list[Message]:
    """Run one ASGI call; returns what the app sent."""
    queue = list(inbound or [{"type": "http.request", "body": b"", "more_body": False}])
    sent: list[Message] = []

    async def receive() -> Message:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def headers_of(messages: list[Message]) -> dict[bytes, bytes]:
    start = next(m for m in messages if m["type"] == "http.response.start")
    return dict(start["headers"])


async def hello(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def test_records_one_trace_with_status_bytes_and_header(fresh_runtime: Runtime) -> None:
    app = LaglessMiddleware(hello)
    sent = await call(app, http_scope(path_params={"id": 7}))
    (trace,) = fresh_runtime.recent_traces()
    assert (trace.method, trace.path, trace.status, trace.response_bytes) == (
        "GET",
        "/items/7",
        200,
        5,
    )
    assert trace.route == "/items/{id}"
    assert trace.duration_ns > 0
    assert trace.attrs["framework"] == "asgi"
    assert trace.request_headers["user-agent"] == "pytest"
    assert trace.response_headers["x-a"] == "1"
    assert_server_timing(headers_of(sent)[b"server-timing"].decode())
    assert _current_trace.get() is None


async def test_response_headers_list_is_not_modified_in_place(fresh_runtime: Runtime) -> None:
    shared_headers = [(b"content-type", b"text/plain")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": shared_headers})
        await send({"type": "http.response.body", "body": b""})

    wrapped = LaglessMiddleware(app)
    await call(wrapped, http_scope())
    await call(wrapped, http_scope())
    assert shared_headers == [(b"content-type", b"text/plain")]


async def test_server_timing_off(fresh_runtime: Runtime) -> None:
    fresh_runtime.configure(server_timing=False)
    sent = await call(LaglessMiddleware(hello), http_scope())
    assert b"server-timing" not in headers_of(sent)
    assert fresh_runtime.recent_traces()[0].status == 200


async def test_disabled_passes_through(fresh_runtime: Runtime) -> None:
    fresh_runtime.configure(enabled=False)
    sent = await call(LaglessMiddleware(hello), http_scope())
    assert b"server-timing" not in headers_of(sent)
    assert fresh_runtime.recent_traces() == []


async def test_streaming_more_body_timed_to_the_last_chunk(fresh_runtime: Runtime) -> None:
    seen_trace: list[Any] = []

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"ab", "more_body": True})
            with lagless.span(f"chunk-{i}"):
                seen_trace.append(_current_trace.get())
        await send({"type": "http.response.body", "body": b"z", "more_body": False})

    await call(LaglessMiddleware(stream), http_scope())
    (trace,) = fresh_runtime.recent_traces()
    assert trace.response_bytes == 7
    assert [s.name for s in trace.spans] == ["chunk-0", "chunk-1", "chunk-2"]
    assert all(t is trace for t in seen_trace)
    last = trace.spans[-1]
    assert trace.start_ns + trace.duration_ns >= last.end_ns


async def test_duration_ends_with_the_response_not_the_background_work(
    fresh_runtime: Runtime,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        with lagless.span("background"):
            pass

    await call(LaglessMiddleware(app), http_scope())
    (trace,) = fresh_runtime.recent_traces()
    (background,) = trace.spans
    # The span ran after the last chunk went out, so it starts after the trace ended.
    assert background.start_ns >= trace.start_ns + trace.duration_ns


async def test_head_request(fresh_runtime: Runtime) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    sent = await call(LaglessMiddleware(app), http_scope(method="HEAD"))
    (trace,) = fresh_runtime.recent_traces()
    assert (trace.method, trace.status, trace.response_bytes) == ("HEAD", 200, 0)
    assert headers_of(sent)[b"content-length"] == b"5"


async def test_exception_recorded_as_500_and_propagates(fresh_runtime: Runtime) -> None:
    class Boom(Exception):
        pass

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise Boom("database on fire")

    with pytest.raises(Boom, match="database on fire"):
        await call(LaglessMiddleware(app), http_scope())
    (trace,) = fresh_runtime.recent_traces()
    assert trace.status == 500
    assert trace.attrs["error"] == "Boom: database on fire"
    assert _current_trace.get() is None


async def test_unprintable_exception_propagates_as_itself(fresh_runtime: Runtime) -> None:
    """Regression: an exception whose ``__str__`` fails used to make lagless's error bookkeeping
    raise inside the ``except`` block, so the caller got that error instead of the app's."""

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    raised = Unprintable()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise raised

    with pytest.raises(Unprintable) as info:
        await call(LaglessMiddleware(app), http_scope())
    assert info.value is raised
    assert info.value.__context__ is None and info.value.__cause__ is None
    (trace,) = fresh_runtime.recent_traces()
    assert (trace.status, trace.attrs["error"]) == (500, "Unprintable: <unprintable>")


async def test_lifespan_and_websocket_scopes_pass_through(fresh_runtime: Runtime) -> None:
    seen: list[tuple[str, object]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["type"], _current_trace.get()))
        message = await receive()
        if scope["type"] == "lifespan":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": message.get("text")})

    wrapped = LaglessMiddleware(app)
    lifespan = await call(wrapped, {"type": "lifespan"}, [{"type": "lifespan.startup"}])
    ws = await call(
        wrapped,
        {"type": "websocket", "path": "/ws", "headers": []},
        [{"type": "websocket.connect", "text": "hi"}],
    )
    assert lifespan == [{"type": "lifespan.startup.complete"}]
    assert ws[1] == {"type": "websocket.send", "text": "hi"}
    assert seen == [("lifespan", None), ("websocket", None)]
    assert fresh_runtime.recent_traces() == []


async def test_nested_instrumentation_records_one_trace(fresh_runtime: Runtime) -> None:
    await call(LaglessMiddleware(LaglessMiddleware(hello)), http_scope())
    assert len(fresh_runtime.recent_traces()) == 1


async def test_internal_error_in_header_is_logged_and_response_unchanged(
    fresh_runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(trace: Any) -> bytes:
        raise RuntimeError("lagless bug")

    monkeypatch.setattr(asgi_mod, "_timing_value", broken)
    with caplog.at_level(logging.ERROR, logger="lagless"):
        sent = await call(LaglessMiddleware(hello), http_scope())
    assert sent[0]["status"] == 200
    assert sent[0]["headers"] == [(b"x-a", b"1")]
    assert sent[1]["body"] == b"hello"
    assert "internal error in asgi:response-start" in caplog.text


async def test_internal_error_in_finish_is_logged_and_response_unchanged(
    fresh_runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(trace: Any) -> None:
        raise RuntimeError("ring broke")

    monkeypatch.setattr(fresh_runtime, "finish_trace", broken)
    with caplog.at_level(logging.ERROR, logger="lagless"):
        sent = await call(LaglessMiddleware(hello), http_scope())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == b"hello"
    assert "internal error in asgi:finish" in caplog.text


# -- route templates and names -------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("/users/{id:int}", "/users/{id}"),
        ("/files/{rest:path}", "/files/{rest}"),
        ("/a/{x}/b/{y:str}", "/a/{x}/b/{y}"),
        ("/plain", "/plain"),
    ],
)
def test_normalize_template(template: str, expected: str) -> None:
    assert normalize_template(template) == expected


def test_default_route_sources() -> None:
    class Route:
        path_format = "/r/{id}"

    assert default_route({"route": Route()}) == "/r/{id}"
    assert default_route({"path_template": "/u/{uid:int}"}) == "/u/{uid}"
    assert default_route({"path": "/x/9/y/abc", "path_params": {"a": 9, "b": "abc"}}) == (
        "/x/{a}/y/{b}"
    )
    assert default_route({"path": "/static", "path_params": {}}) == "/static"
    assert default_route({"path": "/nothing"}) is None


def test_default_handler_name() -> None:
    def endpoint() -> None: ...

    class Handler:
        fn = endpoint

    assert default_handler_name({"endpoint": endpoint}).endswith("<locals>.endpoint")
    assert default_handler_name({"route_handler": Handler()}).endswith("<locals>.endpoint")
    assert default_handler_name({}) == "<unmatched>"


# -- layer timing on hand-built chains ------------------------------------------------------


class Layer:
    """A middleware that 'works' ``before`` ns on the way in, ``after`` on the way out and
    ``per_send`` in its send wrapper, on the fake clock."""

    def __init__(
        self, app: Any, clock: FakeClock, before: int = 0, after: int = 0, per_send: int = 0
    ) -> None:
        self.app = app
        self.clock = clock
        self.before, self.after, self.per_send = before, after, per_send

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.clock.advance(self.before)

        async def wrapped(message: Any) -> None:
            self.clock.advance(self.per_send)
            await send(message)

        await self.app(scope, receive, wrapped)
        self.clock.advance(self.after)


class Outer(Layer):
    pass


class Inner(Layer):
    pass


def endpoint_app(clock: FakeClock, work: int) -> Any:
    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        clock.advance(work)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return endpoint


def show_item() -> None: ...


async def test_own_time_of_each_layer(fresh_runtime: Runtime, clock: FakeClock) -> None:
    fresh_runtime.configure(server_timing=False)
    chain = Outer(Inner(endpoint_app(clock, 7000), clock, 300, 200, 0), clock, 1000, 500, 4000)
    app = LaglessMiddleware(time_chain(chain), timed_layers=True)
    await call(app, http_scope(endpoint=show_item))
    (trace,) = fresh_runtime.recent_traces()
    spans = [(s.kind, s.name, s.duration_ns) for s in trace.spans]
    # Outer's send wrapper runs inside the endpoint's calls to send, yet it is Outer's work.
    assert spans == [
        ("middleware", "Outer", 1000 + 500 + 2 * 4000),
        ("middleware", "Inner", 300 + 200),
        ("handler", "show_item", 7000),
    ]
    starts = [s.start_ns for s in trace.spans]
    assert starts == sorted(starts)


async def test_layer_called_twice_and_short_circuit(
    fresh_runtime: Runtime, clock: FakeClock
) -> None:
    fresh_runtime.configure(server_timing=False)

    class Retry:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            clock.advance(100)
            await self.app(scope, receive, send)
            await self.app(scope, receive, send)

    app = LaglessMiddleware(time_chain(Retry(endpoint_app(clock, 50))), timed_layers=True)
    await call(app, http_scope())
    (trace,) = fresh_runtime.recent_traces()
    assert [(s.name, s.duration_ns) for s in trace.spans] == [("Retry", 100), ("<unmatched>", 100)]

    class Reject:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            clock.advance(30)
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    fresh_runtime.clear()
    app = LaglessMiddleware(time_chain(Reject(endpoint_app(clock, 50))), timed_layers=True)
    await call(app, http_scope())
    (trace,) = fresh_runtime.recent_traces()
    assert trace.status == 401
    assert [(s.kind, s.name, s.duration_ns) for s in trace.spans] == [("middleware", "Reject", 30)]


async def test_middleware_timing_off_records_no_layer_spans(
    fresh_runtime: Runtime, clock: FakeClock
) -> None:
    fresh_runtime.configure(middleware_timing=False)
    chain = Outer(endpoint_app(clock, 10), clock, 5)
    await call(LaglessMiddleware(time_chain(chain), timed_layers=True), http_scope())
    (trace,) = fresh_runtime.recent_traces()
    assert trace.spans == []
    assert trace.status == 200


async def test_handler_only_chain_leaves_streamed_sends_out(
    fresh_runtime: Runtime, clock: FakeClock
) -> None:
    fresh_runtime.configure(server_timing=False)

    async def slow_client_send(message: Any) -> None:
        if message.get("more_body"):
            clock.advance(9000)  # the server waits on a slow client

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        clock.advance(40)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    app = LaglessMiddleware(time_chain(Outer(stream, clock), full=False), timed_layers=True)

    async def receive() -> Any:
        return {"type": "http.request"}

    await app(http_scope(), receive, slow_client_send)
    (trace,) = fresh_runtime.recent_traces()
    assert [(s.kind, s.duration_ns) for s in trace.spans] == [("handler", 40)]


async def test_time_app_times_the_whole_app_as_the_handler(
    fresh_runtime: Runtime, clock: FakeClock
) -> None:
    fresh_runtime.configure(server_timing=False)

    async def slow_client_send(message: Any) -> None:
        if message.get("more_body"):
            clock.advance(9000)

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        clock.advance(60)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        clock.advance(15)
        await send({"type": "http.response.body", "body": b"b"})

    async def receive() -> Any:
        return {"type": "http.request"}

    app = LaglessMiddleware(Outer(stream, clock, before=5), time_app=True)
    await app(http_scope(endpoint=show_item), receive, slow_client_send)
    fresh_runtime.configure(middleware_timing=False)
    await app(http_scope(endpoint=show_item), receive, slow_client_send)
    timed, untimed = fresh_runtime.recent_traces()
    assert [(s.kind, s.name, s.duration_ns) for s in timed.spans] == [
        ("handler", "show_item", 5 + 60 + 15)
    ]
    assert untimed.spans == []


def test_time_chain_follows_closures_and_stops() -> None:
    async def endpoint(scope: Any, receive: Any, send: Any) -> None: ...

    class Router:
        app = "not an ASGI app"

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...

    def factory(app: Any) -> Any:
        async def closure_middleware(scope: Any, receive: Any, send: Any) -> None:
            await app(scope, receive, send)

        return closure_middleware

    outer = Outer(factory(endpoint), FakeClock())
    top = time_chain(outer)
    assert isinstance(top, TimedLayer) and top.name == "Outer"
    inner = outer.app
    assert isinstance(inner, TimedLayer) and inner.name == "factory"
    closure = inner.app
    cell = closure.__closure__[closure.__code__.co_freevars.index("app")]
    assert isinstance(cell.cell_contents, TimedLayer)
    assert cell.cell_contents.kind == "handler"

    router = Router()
    before_router = Outer(router, FakeClock())
    top = time_chain(before_router, stop=router, time_stop=False)
    assert isinstance(top, TimedLayer) and top.kind == "middleware"
    assert before_router.app is router
    # Timing an already timed chain adds nothing.
    assert time_chain(top) is top


def test_layer_names() -> None:
    class Owner:
        def __call__(self, app: Any) -> Any:
            handle = self.handle

            async def middleware(scope: Any, receive: Any, send: Any) -> None:
                await handle(app, scope, receive, send)

            return middleware

        async def handle(self, app: Any, scope: Any, receive: Any, send: Any) -> None: ...

    class Dispatching:
        def __init__(self, dispatch: Any) -> None:
            self.dispatch_func = dispatch

    def add_header() -> None: ...

    assert layer_name(Owner()(None)) == "Owner"
    assert (
        layer_name(Dispatching(add_header)) == "Dispatching(test_layer_names.<locals>.add_header)"
    )
    assert layer_name(Outer(None, FakeClock())) == "Outer"


def test_async_endpoint_cache_is_keyed_by_identity_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: the cache was keyed by ``id()`` alone, so an endpoint created after another
    was garbage-collected could reuse its id and inherit its answer."""
    monkeypatch.setattr(asgi_mod, "_async_endpoints", {})

    async def coro() -> None: ...

    def plain() -> None: ...

    # Simulate id reuse: plain's id already holds the answer cached for another object.
    asgi_mod._async_endpoints[id(plain)] = (coro, True)
    assert asgi_mod._is_async_endpoint({"endpoint": plain}) is False
    assert asgi_mod._is_async_endpoint({"endpoint": coro}) is True
    assert asgi_mod._is_async_endpoint({}) is None
    monkeypatch.setattr(asgi_mod, "_ASYNC_ENDPOINTS_MAX", 2)
    for _ in range(5):
        asgi_mod._is_async_endpoint({"endpoint": lambda: None})
    assert len(asgi_mod._async_endpoints) <= 2

"""Starlette through its own TestClient (and httpx's ASGITransport for concurrency)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("starlette")

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Host, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import lagless
import lagless.integrations.asgi as asgi_mod
from lagless._runtime import Runtime
from lagless._trace import Trace, _current_trace
from lagless.integrations.asgi import LaglessMiddleware
from lagless.integrations.starlette import StarletteRoutes
from tests.integrations.asgi.conftest import FakeClock, assert_server_timing


async def show_user(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["id"]})


async def list_users(request: Request) -> Response:
    return PlainTextResponse("users")


async def org_member(request: Request) -> Response:
    return PlainTextResponse("member")


def sync_report(request: Request) -> Response:
    with lagless.span("report-query"):
        thread = threading.current_thread().name
    return PlainTextResponse(thread)


async def boom(request: Request) -> Response:
    raise RuntimeError("handler exploded")


async def gathered(request: Request) -> Response:
    async def part(i: int) -> int:
        async with lagless.span(f"part-{i}"):
            await asyncio.sleep(0)
            return i

    results = await asyncio.gather(part(1), part(2), part(3))
    return JSONResponse(results)


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"chunk {i}\n".encode()
            await asyncio.sleep(0)
        with lagless.span("last-chunk"):
            yield b"done\n"

    return StreamingResponse(chunks(), media_type="text/plain")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(f"echo {text} traced={_current_trace.get() is not None}")
    await websocket.close()


async def plain_asgi_files(scope: Any, receive: Any, send: Any) -> None:
    """A mounted bare ASGI callable, as a hand-written static-file app would be."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"js"})


def make_app(**kwargs: Any) -> Starlette:
    inner = [Route("/members/{member_id}", org_member)]
    return Starlette(
        routes=[
            Route("/users", list_users),
            Route("/users/{id:int}", show_user, methods=["GET", "POST"]),
            Route("/report", sync_report),
            Route("/boom", boom),
            Route("/gather", gathered),
            Route("/stream", stream),
            WebSocketRoute("/ws", echo),
            Mount("/orgs/{org_id:int}", routes=inner),
            Mount("/static", app=StaticFiles(directory=".", check_dir=False)),
            Mount("/assets", app=plain_asgi_files),
            Host("api.example.com", app=Starlette(routes=[Route("/hosted", list_users)])),
        ],
        **kwargs,
    )


def last_trace(rt: Runtime) -> Trace:
    return rt.recent_traces()[-1]


def test_instrument_returns_same_app_and_is_idempotent(fresh_runtime: Runtime) -> None:
    app = make_app()
    assert lagless.instrument(app, integrations=False) is app
    assert lagless.instrument(app, integrations=False) is app
    stack_builds = []
    original = app.build_middleware_stack

    def counting() -> Any:
        stack_builds.append(1)
        return original()

    app.build_middleware_stack = counting  # type: ignore[method-assign]
    with TestClient(app) as client:
        client.get("/users")
    assert isinstance(app.middleware_stack, LaglessMiddleware)
    assert len(fresh_runtime.recent_traces()) == 1
    assert stack_builds == [1]


@pytest.mark.parametrize(
    ("method", "path", "route", "status"),
    [
        ("GET", "/users", "/users", 200),
        ("GET", "/users/42", "/users/{id}", 200),
        ("DELETE", "/users/42", "/users/{id}", 405),
        ("GET", "/orgs/7/members/alice", "/orgs/{org_id}/members/{member_id}", 200),
        ("GET", "/orgs/7/nobody", None, 404),
        ("GET", "/static/missing.txt", "/static/{path}", 404),
        ("GET", "/assets/app.3f2a.js", "/assets/{path}", 200),
        ("GET", "/nowhere", None, 404),
    ],
)
def test_route_templates(
    fresh_runtime: Runtime, method: str, path: str, route: str | None, status: int
) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client:
        response = client.request(method, path)
    assert response.status_code == status
    trace = last_trace(fresh_runtime)
    assert (trace.method, trace.path, trace.route, trace.status) == (method, path, route, status)
    assert trace.attrs["framework"] == "starlette"


def test_route_template_without_scope_route(fresh_runtime: Runtime) -> None:
    """Starlette versions before ``scope["route"]`` existed: the endpoint is the key."""
    app = make_app()
    resolve = StarletteRoutes(app)
    assert resolve({"endpoint": org_member}) == "/orgs/{org_id}/members/{member_id}"
    assert resolve({"endpoint": show_user}) == "/users/{id}"
    assert resolve({}) is None
    # Routes added later are found (the table is rebuilt when the route count changes).
    app.add_route("/late/{x}", list_users)
    assert resolve({"route": app.router.routes[-1]}) == "/late/{x}"


def test_host_routes(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app, base_url="http://api.example.com") as client:
        assert client.get("/hosted").status_code == 200
    assert last_trace(fresh_runtime).route == "/hosted"


def test_server_timing_header(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client:
        metrics = assert_server_timing(client.get("/users/1").headers.get("server-timing"))
    assert metrics["app"] <= metrics["total"]


def test_server_timing_off(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False, server_timing=False)
    with TestClient(app) as client:
        response = client.get("/users/1")
    assert response.status_code == 200
    assert "server-timing" not in response.headers
    assert last_trace(fresh_runtime).status == 200


def test_handler_span_and_sync_endpoint_in_threadpool(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client:
        response = client.get("/report")
    assert response.text != threading.current_thread().name
    trace = last_trace(fresh_runtime)
    (query,) = trace.spans_of("custom")
    (handler,) = trace.spans_of("handler")
    assert query.name == "report-query"
    assert handler.name == "sync_report"
    # The threadpool call happened inside the endpoint's time.
    assert handler.start_ns <= query.start_ns
    assert trace.spans_of("middleware") == []  # no user middleware: only the handler is timed


def test_gather_spans_land_in_the_request_trace(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client:
        assert client.get("/gather").json() == [1, 2, 3]
    trace = last_trace(fresh_runtime)
    assert sorted(s.name for s in trace.spans_of("custom")) == ["part-1", "part-2", "part-3"]


def test_streaming_response_timed_to_its_end(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client:
        response = client.get("/stream")
    assert response.text.endswith("done\n")
    trace = last_trace(fresh_runtime)
    (last,) = [s for s in trace.spans if s.name == "last-chunk"]
    (handler,) = trace.spans_of("handler")
    assert trace.response_bytes == len(response.content)
    assert trace.start_ns + trace.duration_ns >= last.end_ns
    assert handler.start_ns <= last.start_ns


def test_exception_is_500_recorded_and_reraised(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client, pytest.raises(RuntimeError, match="handler exploded"):
        client.get("/boom")
    trace = last_trace(fresh_runtime)
    assert trace.status == 500
    assert trace.route == "/boom"
    assert trace.attrs["error"] == "RuntimeError: handler exploded"
    assert [s.name for s in trace.spans_of("handler")] == ["boom"]

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert_server_timing(response.headers.get("server-timing"))


def test_lifespan_runs_and_websocket_passes_through(fresh_runtime: Runtime) -> None:
    events: list[str] = []

    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    from contextlib import asynccontextmanager

    app = lagless.instrument(make_app(lifespan=asynccontextmanager(lifespan)), integrations=False)
    with TestClient(app) as client:
        assert events == ["startup"]
        with client.websocket_connect("/ws") as ws:
            ws.send_text("hi")
            assert ws.receive_text() == "echo hi traced=False"
    assert events == ["startup", "shutdown"]
    assert fresh_runtime.recent_traces() == []


async def test_concurrent_requests_never_mix_spans(fresh_runtime: Runtime) -> None:
    async def tagged(request: Request) -> Response:
        rid = request.path_params["rid"]
        for step in range(3):
            with lagless.span(f"req-{rid}-{step}"):
                await asyncio.sleep(0)
        return PlainTextResponse(rid)

    app = lagless.instrument(Starlette(routes=[Route("/t/{rid}", tagged)]), integrations=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(*(client.get(f"/t/{i}") for i in range(20)))
    assert [r.text for r in responses] == [str(i) for i in range(20)]
    traces = fresh_runtime.recent_traces()
    assert len(traces) == 20
    for trace in traces:
        rid = trace.path.rsplit("/", 1)[1]
        names = [s.name for s in trace.spans_of("custom")]
        assert names == [f"req-{rid}-{step}" for step in range(3)]
        assert trace.route == "/t/{rid}"


# -- middleware audit ---------------------------------------------------------------------


class PureTiming:
    """A pure ASGI middleware that works 1000 ns before and 4000 ns in its send wrapper."""

    bodies = 0

    def __init__(self, app: Any, clock: FakeClock) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.clock.advance(1000)

        async def compressing_send(message: Any) -> None:
            if message["type"] == "http.response.body":
                PureTiming.bodies += 1
                self.clock.advance(4000)
            await send(message)

        await self.app(scope, receive, compressing_send)


class HiddenInner:
    """Keeps the next app under a private name, so only the build-time wrapping sees it."""

    def __init__(self, app: Any, clock: FakeClock) -> None:
        self._next = app
        self.clock = clock

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.clock.advance(300)
        await self._next(scope, receive, send)


class AddHeader(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Any) -> Response:
        request.app.state.clock.advance(20_000)
        response = await call_next(request)
        response.headers["x-added"] = "yes"
        return response


def audited_app(clock: FakeClock) -> Starlette:
    async def work(request: Request) -> Response:
        clock.advance(7000)
        return PlainTextResponse("done")

    app = Starlette(
        routes=[Route("/work", work)],
        middleware=[
            Middleware(PureTiming, clock=clock),
            Middleware(AddHeader),
            Middleware(HiddenInner, clock=clock),
        ],
    )
    app.state.clock = clock
    return app


def test_middleware_spans_named_ordered_with_own_time(
    fresh_runtime: Runtime, clock: FakeClock
) -> None:
    app = lagless.instrument(audited_app(clock), integrations=False, server_timing=False)
    PureTiming.bodies = 0
    with TestClient(app) as client:
        response = client.get("/work")
    assert response.headers["x-added"] == "yes"
    # BaseHTTPMiddleware re-streams the body: a chunk, then an empty last one.
    assert PureTiming.bodies >= 1
    trace = last_trace(fresh_runtime)
    layers = [(s.kind, s.name, s.duration_ns) for s in trace.spans]
    assert [name for _, name, _ in layers] == [
        "ServerErrorMiddleware",
        "PureTiming",
        "AddHeader",
        "HiddenInner",
        "ExceptionMiddleware",
        "audited_app.<locals>.work",
    ]
    own = {name: dur for _, name, dur in layers}
    # The send wrapper's work is charged to PureTiming even though the endpoint triggers it.
    assert own["PureTiming"] == 1000 + 4000 * PureTiming.bodies
    assert own["AddHeader"] == 20_000
    assert own["HiddenInner"] == 300
    assert own["audited_app.<locals>.work"] == 7000
    assert own["ServerErrorMiddleware"] == own["ExceptionMiddleware"] == 0
    assert layers[-1][0] == "handler"
    assert all(kind == "middleware" for kind, _, _ in layers[:-1])


def test_middleware_added_after_instrument_is_timed(
    fresh_runtime: Runtime, clock: FakeClock
) -> None:
    app = lagless.instrument(audited_app(clock), integrations=False, server_timing=False)

    async def stamp(request: Request, call_next: Any) -> Response:
        return await call_next(request)  # type: ignore[no-any-return]

    app.add_middleware(BaseHTTPMiddleware, dispatch=stamp)
    with TestClient(app) as client:
        client.get("/work")
    names = [s.name for s in last_trace(fresh_runtime).spans_of("middleware")]
    assert (
        names[1]
        == "BaseHTTPMiddleware(test_middleware_added_after_instrument_is_timed.<locals>.stamp)"
    )


def test_middleware_timing_switch(fresh_runtime: Runtime, clock: FakeClock) -> None:
    app = lagless.instrument(audited_app(clock), integrations=False, middleware_timing=False)
    with TestClient(app) as client:
        client.get("/work")
        assert last_trace(fresh_runtime).spans == []
        fresh_runtime.configure(middleware_timing=True)
        client.get("/work")
        assert last_trace(fresh_runtime).spans_of("handler")


def test_middleware_spans_show_in_server_timing(fresh_runtime: Runtime) -> None:
    class Slowish:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            with lagless.span("mw-work"):
                pass
            await self.app(scope, receive, send)

    app = Starlette(routes=[Route("/users", list_users)], middleware=[Middleware(Slowish)])
    lagless.instrument(app, integrations=False)
    with TestClient(app) as client:
        assert_server_timing(client.get("/users").headers.get("server-timing"))
    trace = last_trace(fresh_runtime)
    (mw,) = [s for s in trace.spans_of("middleware") if s.name == "Slowish"]
    (work,) = trace.spans_of("custom")
    # The span ran in the middleware's own code, so its own time covers it.
    assert mw.duration_ns >= work.duration_ns >= 0


def test_internal_error_is_logged_and_response_unchanged(
    fresh_runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = lagless.instrument(make_app(), integrations=False)

    def broken_header(trace: Any, now_ns: int) -> str:
        raise ZeroDivisionError("bad maths in lagless")

    def broken_name(scope: Any) -> str:
        raise KeyError("handler bookkeeping")

    monkeypatch.setattr(asgi_mod, "server_timing", broken_header)
    # Read when the middleware stack is built, on the first request.
    monkeypatch.setattr(asgi_mod, "default_handler_name", broken_name)
    with caplog.at_level(logging.ERROR, logger="lagless"), TestClient(app) as client:
        # /report records a span before the headers go out, so the full header path runs.
        response = client.get("/report")
    assert response.status_code == 200
    assert response.text.startswith(("AnyIO", "asyncio", "Thread"))
    assert "server-timing" not in response.headers
    assert "internal error in asgi:response-start" in caplog.text
    assert "internal error in asgi:finish" in caplog.text


# -- mounted sub-applications -----------------------------------------------------------------


class Toll:
    """A pure ASGI middleware that works ``cost`` ns before calling its app."""

    def __init__(self, app: Any, clock: FakeClock, cost: int) -> None:
        self.app = app
        self.clock = clock
        self.cost = cost

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.clock.advance(self.cost)
        await self.app(scope, receive, send)


def mounted_app(clock: FakeClock, *, outer_middleware: bool) -> Starlette:
    async def item(request: Request) -> Response:
        clock.advance(7000)
        return PlainTextResponse(request.path_params["item_id"])

    sub = Starlette(
        routes=[Route("/items/{item_id}", item)],
        middleware=[Middleware(Toll, clock=clock, cost=3000)],
    )
    inner = Starlette(routes=[Mount("/deep", app=sub)])
    middleware = [Middleware(Toll, clock=clock, cost=500)] if outer_middleware else []
    return Starlette(routes=[Mount("/v1", app=inner)], middleware=middleware)


@pytest.mark.parametrize("outer_middleware", [True, False])
def test_mounted_apps_middleware_timed_in_the_outer_trace(
    fresh_runtime: Runtime, clock: FakeClock, outer_middleware: bool
) -> None:
    """A mounted app's own middleware gets its own-time span in the one request trace, also
    when the outer app has no middleware; the endpoint is the one handler span and the outer
    routers' share is the ``Router`` layer."""
    app = lagless.instrument(
        mounted_app(clock, outer_middleware=outer_middleware),
        integrations=False,
        server_timing=False,
    )
    with TestClient(app) as client:
        assert client.get("/v1/deep/items/42").text == "42"
    trace = last_trace(fresh_runtime)
    assert trace.route == "/v1/deep/items/{item_id}"
    (handler,) = trace.spans_of("handler")
    assert handler.name.endswith("mounted_app.<locals>.item")
    assert handler.duration_ns == 7000
    tolls = [s.duration_ns for s in trace.spans_of("middleware") if s.name == "Toll"]
    assert tolls == ([500, 3000] if outer_middleware else [3000])
    routers = [s for s in trace.spans_of("middleware") if s.name == "Router"]
    assert routers and all(s.duration_ns == 0 for s in routers)
    assert len([t for t in fresh_runtime.recent_traces() if t.route]) == 1  # one trace


def test_mounted_app_without_middleware_keeps_the_plain_path(
    fresh_runtime: Runtime, clock: FakeClock
) -> None:
    """Nothing to time inside the mounts: the bare app's single handler span, no layers."""

    async def item(request: Request) -> Response:
        clock.advance(2000)
        return PlainTextResponse("ok")

    sub = Starlette(routes=[Route("/x", item)])
    app = lagless.instrument(
        Starlette(routes=[Mount("/m", app=sub)]), integrations=False, server_timing=False
    )
    with TestClient(app) as client:
        assert client.get("/m/x").text == "ok"
    trace = last_trace(fresh_runtime)
    assert trace.spans_of("middleware") == []
    (handler,) = trace.spans_of("handler")
    assert handler.duration_ns == 2000

"""Litestar through its own TestClient (and httpx's ASGITransport for concurrency)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("litestar")

import httpx
from litestar import Litestar, Router, get, websocket
from litestar.config.cors import CORSConfig
from litestar.connection import WebSocket
from litestar.middleware import ASGIMiddleware
from litestar.params import FromPath
from litestar.response import Stream
from litestar.testing import TestClient
from litestar.types import ASGIApp, Receive, Scope, Send

import lagless
import lagless.integrations.asgi as asgi_mod
from lagless._runtime import Runtime
from lagless._trace import Trace, _current_trace
from tests.integrations.asgi.conftest import FakeClock, assert_server_timing

events: list[str] = []
CLOCK: list[FakeClock] = []


def tick(ns: int) -> None:
    if CLOCK:
        CLOCK[0].advance(ns)


class Tenant:
    """A plain ASGI middleware class, as Litestar accepts them (``Tenant(app=...)``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tick(1200)
        await self.app(scope, receive, send)


class RateLimit(ASGIMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        tick(300)
        await next_app(scope, receive, send)


@get("/users/{user_id:int}")
async def get_user(user_id: FromPath[int]) -> dict[str, int]:
    tick(5000)
    return {"id": user_id}


@get("/orders/{order_id:str}/lines/{line:int}")
async def get_line(order_id: FromPath[str], line: FromPath[int]) -> dict[str, Any]:
    return {"order": order_id, "line": line}


@get("/report", sync_to_thread=True)
def report() -> str:
    with lagless.span("report-work"):
        return threading.current_thread().name


@get("/boom")
async def boom() -> None:
    raise LookupError("no such thing")


@get("/gather")
async def gathered() -> list[int]:
    async def part(i: int) -> int:
        async with lagless.span(f"part-{i}"):
            await asyncio.sleep(0)
            return i

    return list(await asyncio.gather(part(1), part(2), part(3)))


@get("/stream")
async def stream() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"line {i}\n".encode()
        with lagless.span("last-chunk"):
            yield b"end\n"

    return Stream(chunks())


@get("/req/{rid:str}")
async def tagged(rid: FromPath[str]) -> str:
    for step in range(3):
        with lagless.span(f"req-{rid}-{step}"):
            await asyncio.sleep(0)
    return rid


@websocket("/ws")
async def ws_echo(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    text = await socket.receive_text()
    await socket.send_text(f"echo {text} traced={_current_trace.get() is not None}")
    await socket.close()


def make_app(**kwargs: Any) -> Litestar:
    api = Router(path="/api", route_handlers=[get_user, get_line], middleware=[Tenant])
    # Litestar's default logging set-up reconfigures the root logger for the whole process
    # (and replaces the handlers caplog listens on): keep the test session's logging as it is.
    kwargs.setdefault("logging_config", None)
    return Litestar(
        route_handlers=[api, report, boom, gathered, stream, tagged, ws_echo],
        on_startup=[lambda: events.append("startup")],
        on_shutdown=[lambda: events.append("shutdown")],
        middleware=[RateLimit()],
        **kwargs,
    )


def last_trace(rt: Runtime) -> Trace:
    return rt.recent_traces()[-1]


def test_instrument_returns_same_app_and_is_idempotent(fresh_runtime: Runtime) -> None:
    app = make_app()
    assert lagless.instrument(app, integrations=False) is app
    handler = app.asgi_handler
    assert lagless.instrument(app, integrations=False) is app
    assert app.asgi_handler is handler
    with TestClient(app) as client:
        assert client.get("/api/users/1").json() == {"id": 1}
    assert len(fresh_runtime.recent_traces()) == 1
    assert last_trace(fresh_runtime).attrs["framework"] == "litestar"


@pytest.mark.parametrize(
    ("path", "route", "status"),
    [
        ("/api/users/12", "/api/users/{user_id}", 200),
        ("/api/orders/A1/lines/3", "/api/orders/{order_id}/lines/{line}", 200),
        ("/api/users/abc", None, 404),
        ("/nowhere", None, 404),
    ],
)
def test_route_templates(fresh_runtime: Runtime, path: str, route: str | None, status: int) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client:
        assert client.get(path).status_code == status
    trace = last_trace(fresh_runtime)
    assert (trace.route, trace.status) == (route, status)


def test_server_timing_header_and_off_switch(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client:
        assert_server_timing(client.get("/gather").headers.get("server-timing"))
        fresh_runtime.configure(server_timing=False)
        response = client.get("/api/users/1")
    assert response.status_code == 200
    assert "server-timing" not in response.headers


def test_middleware_and_handler_spans(fresh_runtime: Runtime, clock: FakeClock) -> None:
    app = lagless.instrument(make_app(), integrations=False, server_timing=False)
    CLOCK.append(clock)
    try:
        with TestClient(app) as client:
            client.get("/api/users/2")
    finally:
        CLOCK.clear()
    trace = last_trace(fresh_runtime)
    spans = [(s.kind, s.name, s.duration_ns) for s in trace.spans]
    # App-level middleware runs outside router-level middleware; Litestar puts its exception
    # handler between the middleware and the handler.
    assert spans == [
        ("middleware", "RateLimit", 300),
        ("middleware", "Tenant", 1200),
        ("middleware", "ExceptionHandlerMiddleware", 0),
        ("handler", "get_user", 5000),
    ]


def test_app_level_layers_timed_with_cors(fresh_runtime: Runtime, clock: FakeClock) -> None:
    app = lagless.instrument(
        make_app(cors_config=CORSConfig(allow_origins=["*"])),
        integrations=False,
        server_timing=False,
    )
    CLOCK.append(clock)
    try:
        with TestClient(app) as client:
            response = client.get("/api/users/2", headers={"origin": "http://x.example"})
    finally:
        CLOCK.clear()
    assert response.headers["access-control-allow-origin"] == "*"
    spans = [(s.kind, s.name, s.duration_ns) for s in last_trace(fresh_runtime).spans]
    assert spans == [
        ("middleware", "CORSMiddleware", 0),
        ("middleware", "ExceptionHandlerMiddleware", 0),
        ("middleware", "RateLimit", 300),
        ("middleware", "Tenant", 1200),
        ("middleware", "ExceptionHandlerMiddleware", 0),
        ("handler", "get_user", 5000),
    ]


def test_sync_handler_in_thread_and_gather(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client:
        thread_name = client.get("/report").text
        assert client.get("/gather").json() == [1, 2, 3]
    report_trace, gather_trace = fresh_runtime.recent_traces()
    assert thread_name != threading.current_thread().name
    assert [s.name for s in report_trace.spans_of("custom")] == ["report-work"]
    assert [s.name for s in report_trace.spans_of("handler")] == ["report"]
    assert sorted(s.name for s in gather_trace.spans_of("custom")) == [
        "part-1",
        "part-2",
        "part-3",
    ]


def test_streaming_response_timed_to_its_end(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client:
        body = client.get("/stream").content
    trace = last_trace(fresh_runtime)
    (last,) = [s for s in trace.spans if s.name == "last-chunk"]
    assert body.endswith(b"end\n")
    assert trace.response_bytes == len(body)
    assert trace.start_ns + trace.duration_ns >= last.end_ns


def test_exception_is_500_and_recorded(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    trace = last_trace(fresh_runtime)
    assert trace.status == 500
    assert trace.route == "/boom"
    # Litestar turns the exception into a 500 response itself; the handler's span remains.
    assert [s.name for s in trace.spans_of("handler")] == ["boom"]


def test_handler_exception_text_recorded_on_the_500(fresh_runtime: Runtime) -> None:
    """Litestar turns the exception into a response before lagless sees it; the error text
    comes from the handler's timing layer, which the exception went through."""
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.get("/boom")
        client.get("/nowhere")
    boom_trace, missing_trace = fresh_runtime.recent_traces()
    assert boom_trace.attrs["error"] == "LookupError: no such thing"
    assert "error" not in missing_trace.attrs  # a 404 is not an error


def test_lifespan_and_websocket(fresh_runtime: Runtime) -> None:
    events.clear()
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client:
        assert events == ["startup"]
        with client.websocket_connect("/ws") as ws:
            ws.send_text("hi")
            assert ws.receive_text() == "echo hi traced=False"
    assert events == ["startup", "shutdown"]
    assert fresh_runtime.recent_traces() == []


async def test_twenty_concurrent_requests_keep_their_spans(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(*(client.get(f"/req/n{i}") for i in range(20)))
    assert [r.text for r in responses] == [f"n{i}" for i in range(20)]
    traces = fresh_runtime.recent_traces()
    assert len(traces) == 20
    for trace in traces:
        rid = trace.path.rsplit("/", 1)[1]
        assert [s.name for s in trace.spans_of("custom")] == [
            f"req-{rid}-{step}" for step in range(3)
        ]


def test_internal_error_logged_and_response_unchanged(
    fresh_runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("broken header")

    monkeypatch.setattr(asgi_mod, "_timing_value", broken)
    app = lagless.instrument(make_app(), integrations=False)
    with caplog.at_level(logging.ERROR, logger="lagless"), TestClient(app) as client:
        response = client.get("/api/users/5")
    assert response.json() == {"id": 5}
    assert "server-timing" not in response.headers
    assert "internal error in asgi:response-start" in caplog.text

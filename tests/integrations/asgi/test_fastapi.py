"""FastAPI through its own TestClient (and httpx's ASGITransport for concurrency)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

pytest.importorskip("fastapi")

import httpx
from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response

import lagless
from lagless._runtime import Runtime
from lagless._trace import Trace, _current_trace
from tests.integrations.asgi.conftest import FakeClock, assert_server_timing

events: list[str] = []


def make_app(**kwargs: Any) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan, **kwargs)
    users = APIRouter(prefix="/api/users")

    @users.get("/{user_id}")
    async def get_user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    @users.get("/{user_id}/orders/{order_id}")
    async def get_order(user_id: int, order_id: str) -> dict[str, Any]:
        return {"user": user_id, "order": order_id}

    app.include_router(users)

    sub = FastAPI()

    @sub.get("/status")
    async def sub_status() -> str:
        return "ok"

    app.mount("/v2", sub)

    @app.get("/sync")
    def sync_endpoint() -> str:
        with lagless.span("sync-work"):
            return threading.current_thread().name

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("bad input reached the handler")

    @app.get("/gather")
    async def gathered() -> list[int]:
        async def part(i: int) -> int:
            async with lagless.span(f"part-{i}"):
                await asyncio.sleep(0)
                return i

        return list(await asyncio.gather(part(1), part(2), part(3)))

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield b"x" * 10 + str(i).encode()
            with lagless.span("last-chunk"):
                yield b"end"

        return StreamingResponse(chunks())

    @app.get("/req/{rid}")
    async def tagged(rid: str) -> str:
        for step in range(3):
            with lagless.span(f"req-{rid}-{step}"):
                await asyncio.sleep(0)
        return rid

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        name = await websocket.receive_text()
        await websocket.send_text(f"hello {name} traced={_current_trace.get() is not None}")
        await websocket.close()

    return app


def last_trace(rt: Runtime) -> Trace:
    return rt.recent_traces()[-1]


def test_instrument_returns_same_app_and_decorators_still_work(fresh_runtime: Runtime) -> None:
    app = make_app()
    assert lagless.instrument(app) is app  # with the driver integrations, as users call it
    assert lagless.instrument(app, integrations=False) is app

    @app.get("/added-later/{item}")
    async def added_later(item: str) -> str:
        return item

    with TestClient(app) as client:
        assert client.get("/added-later/a").json() == "a"
    trace = last_trace(fresh_runtime)
    assert trace.route == "/added-later/{item}"
    assert trace.attrs["framework"] == "fastapi"
    assert len(fresh_runtime.recent_traces()) == 1


@pytest.mark.parametrize(
    ("path", "route", "status"),
    [
        ("/api/users/5", "/api/users/{user_id}", 200),
        ("/api/users/5/orders/x9", "/api/users/{user_id}/orders/{order_id}", 200),
        ("/api/users/not-a-number", "/api/users/{user_id}", 422),
        ("/v2/status", "/v2/status", 200),
        ("/v2/missing", None, 404),
        ("/missing", None, 404),
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
        assert_server_timing(client.get("/api/users/1").headers.get("server-timing"))
        assert_server_timing(client.get("/gather").headers.get("server-timing"))
        fresh_runtime.configure(server_timing=False)
        response = client.get("/api/users/1")
    assert response.json() == {"id": 1}
    assert "server-timing" not in response.headers


def test_handler_span_for_async_and_sync_endpoints(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client:
        client.get("/api/users/3")
        thread_name = client.get("/sync").json()
    traces = fresh_runtime.recent_traces()
    assert [s.name for s in traces[0].spans_of("handler")] == ["make_app.<locals>.get_user"]
    (handler,) = traces[1].spans_of("handler")
    (work,) = traces[1].spans_of("custom")
    assert handler.name == "make_app.<locals>.sync_endpoint"
    assert work.name == "sync-work"
    assert thread_name != threading.current_thread().name
    assert handler.start_ns <= work.start_ns


def test_gather_and_streaming(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client:
        assert client.get("/gather").json() == [1, 2, 3]
        body = client.get("/stream").content
    gather_trace, stream_trace = fresh_runtime.recent_traces()
    assert sorted(s.name for s in gather_trace.spans_of("custom")) == [
        "part-1",
        "part-2",
        "part-3",
    ]
    (last,) = [s for s in stream_trace.spans if s.name == "last-chunk"]
    assert body.endswith(b"end")
    assert stream_trace.response_bytes == len(body)
    assert stream_trace.start_ns + stream_trace.duration_ns >= last.end_ns


def test_exception_500_recorded_and_reraised(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client, pytest.raises(ValueError, match="bad input"):
        client.get("/boom")
    trace = last_trace(fresh_runtime)
    assert trace.status == 500
    assert trace.route == "/boom"
    assert trace.attrs["error"] == "ValueError: bad input reached the handler"


def test_lifespan_and_websocket(fresh_runtime: Runtime) -> None:
    events.clear()
    app = lagless.instrument(make_app(), integrations=False)
    with TestClient(app) as client:
        assert events == ["startup"]
        with client.websocket_connect("/ws") as ws:
            ws.send_text("ada")
            assert ws.receive_text() == "hello ada traced=False"
    assert events == ["startup", "shutdown"]
    assert fresh_runtime.recent_traces() == []


async def test_twenty_concurrent_requests_keep_their_spans(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(*(client.get(f"/req/r{i}") for i in range(20)))
    assert [r.json() for r in responses] == [f"r{i}" for i in range(20)]
    traces = fresh_runtime.recent_traces()
    assert len(traces) == 20
    for trace in traces:
        rid = trace.path.rsplit("/", 1)[1]
        assert [s.name for s in trace.spans_of("custom")] == [
            f"req-{rid}-{step}" for step in range(3)
        ]
        assert trace.route == "/req/{rid}"


def test_user_middleware_audit(fresh_runtime: Runtime, clock: FakeClock) -> None:
    class Auth:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            clock.advance(2500)
            await self.app(scope, receive, send)

    async def audit(request: Request, call_next: Any) -> Response:
        clock.advance(900)
        response: Response = await call_next(request)
        return response

    app = make_app()
    app.add_middleware(BaseHTTPMiddleware, dispatch=audit)
    app.add_middleware(GZipMiddleware, minimum_size=10)
    app.add_middleware(Auth)
    lagless.instrument(app, integrations=False, server_timing=False)
    with TestClient(app) as client:
        assert client.get("/api/users/8").json() == {"id": 8}
    trace = last_trace(fresh_runtime)
    middleware = [s.name for s in trace.spans_of("middleware")]
    # Outermost first: FastAPI's own layers around the user's, in the order they run.
    assert middleware[0] == "ServerErrorMiddleware"
    user = [n for n in middleware if n in ("Auth", "GZipMiddleware") or "audit" in n]
    assert user == [
        "Auth",
        "GZipMiddleware",
        "BaseHTTPMiddleware(test_user_middleware_audit.<locals>.audit)",
    ]
    assert "ExceptionMiddleware" in middleware
    assert middleware.index("ExceptionMiddleware") > middleware.index("Auth")
    own = {s.name: s.duration_ns for s in trace.spans}
    assert own["Auth"] == 2500
    assert own["BaseHTTPMiddleware(test_user_middleware_audit.<locals>.audit)"] == 900
    assert all(s.duration_ns >= 0 for s in trace.spans)
    (handler,) = trace.spans_of("handler")
    assert handler.name == "make_app.<locals>.get_user"
    assert trace.spans[-1] is handler


def test_internal_error_logged_and_response_unchanged(
    fresh_runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = lagless.instrument(make_app(), integrations=False)

    def broken(trace: Trace) -> None:
        raise RuntimeError("listener blew up")

    # A failure inside the runtime's hand-off of the finished trace.
    monkeypatch.setattr(fresh_runtime, "finish_trace", broken)
    with caplog.at_level(logging.ERROR, logger="lagless"), TestClient(app) as client:
        response = client.get("/api/users/4")
    assert response.status_code == 200
    assert response.json() == {"id": 4}
    assert "internal error in asgi:finish" in caplog.text


def test_mounted_sub_api_middleware_audit(fresh_runtime: Runtime, clock: FakeClock) -> None:
    """``app.mount("/v2", sub_api)``: the sub-application's ``@middleware("http")`` function
    is a middleware span of the request, the sub-API's endpoint the handler."""
    sub = FastAPI()

    @sub.middleware("http")
    async def tenant(request: Request, call_next: Any) -> Response:
        clock.advance(1200)
        response: Response = await call_next(request)
        return response

    @sub.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        clock.advance(4000)
        return {"order": order_id}

    app = FastAPI()
    app.mount("/v2", sub)
    lagless.instrument(app, integrations=False, server_timing=False)
    with TestClient(app) as client:
        assert client.get("/v2/orders/5").json() == {"order": 5}
    trace = last_trace(fresh_runtime)
    assert trace.route == "/v2/orders/{order_id}"
    own = {s.name: s.duration_ns for s in trace.spans_of("middleware")}
    name = "BaseHTTPMiddleware(test_mounted_sub_api_middleware_audit.<locals>.tenant)"
    assert own[name] == 1200
    (handler,) = trace.spans_of("handler")
    assert handler.name.endswith("order") and handler.duration_ns >= 4000

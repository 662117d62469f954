"""The doctor's run against real apps: in process (ASGI, WSGI) and over HTTP (a URL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from lagless._runtime import Runtime
from lagless._scenario import parse_scenario
from lagless.doctor import diagnose, resolve_target
from lagless.doctor._client import parse_server_timing
from lagless.doctor._runner import RunOptions, run

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

# FastAPI resolves annotations at module level (this file uses postponed annotations).
from fastapi import FastAPI, Path, Request
from fastapi.responses import HTMLResponse, PlainTextResponse


def _shop() -> tuple[Any, dict[str, int]]:
    calls: dict[str, int] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "hello"}

    app = FastAPI(lifespan=lifespan)

    def hit(name: str) -> None:
        calls[name] = calls.get(name, 0) + 1

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        hit("page")
        return '<link rel="stylesheet" href="/asset.css"><script src="/asset.js"></script>'

    @app.get("/asset.css", include_in_schema=False)
    async def css() -> PlainTextResponse:
        hit("css")
        return PlainTextResponse("body{}", media_type="text/css")

    @app.get("/items")
    async def items(request: Request) -> dict[str, Any]:
        hit("items")
        return {"items": [{"id": 7}, {"id": 8}], "state": request.state.greeting}

    @app.get("/items/{item_id}")
    async def item(item_id: int = Path(examples=[1])) -> dict[str, int]:
        hit(f"item:{item_id}")
        return {"id": item_id}

    @app.get("/secret/{token}")
    async def secret(token: str) -> dict[str, str]:
        hit("secret")
        return {}

    @app.post("/items")
    async def create() -> dict[str, bool]:
        hit("create")
        return {"ok": True}

    @app.delete("/items/{item_id}")
    async def delete(item_id: int = Path(examples=[1])) -> None:
        hit("delete")

    return app, calls


def test_in_process_asgi_run_follows_the_plan(fresh_runtime: Runtime) -> None:
    app, calls = _shop()
    scenario = parse_scenario(
        """
[[request]]
path = "/items"
capture = { first = "json:items.0.id" }

[[request]]
path = "/items/{first}"

[[request]]
method = "POST"
path = "/items"
"""
    )
    target = resolve_target(app)
    result = asyncio.run(run(target, RunOptions(runs=3, warmup=2, scenario=scenario)))
    # Scenario requests plus the page and the stylesheet it links; /asset.js is a 404.
    routes = {(t.method, t.route_or_path) for t in result.traces}
    assert {
        ("GET", "/items"),
        ("GET", "/items/{item_id}"),
        ("POST", "/items"),
        ("GET", "/"),
    } <= routes
    assert ("GET", "/asset.css") in routes
    # The captured id was used; the schema's example (1) was not needed.
    assert calls["item:7"] == 2 + 3 and "item:1" not in calls
    assert calls["create"] == 5  # named in the scenario: run (2 warm-up + 3 measured)
    assert "delete" not in calls  # unsafe and not named: never called
    assert "secret" not in calls  # no value for {token}
    assert {(s.method, s.route) for s in result.skipped} == {
        ("DELETE", "/items/{item_id}"),
        ("GET", "/secret/{token}"),
    }
    assert len(result.traces) == 3 * len(result.plan)
    assert all("body_digest" in t.attrs for t in result.traces)
    # The lifespan ran and its state reached the requests.
    assert calls["items"] == 5
    # Settings the run switched on are restored afterwards.
    assert fresh_runtime.config.body_digest is False
    assert result.failures == []  # a 404 asset is not a failure; only 5xx and errors are


def test_concurrency_runs_every_request(fresh_runtime: Runtime) -> None:
    app, calls = _shop()
    result = asyncio.run(run(resolve_target(app), RunOptions(runs=4, concurrency=3)))
    assert len(result.traces) == 4 * len(result.plan)
    assert calls["item:1"] == 5  # the OpenAPI example: 1 warm-up + 4 measured


def test_flask_app_in_process(fresh_runtime: Runtime) -> None:
    from flask import Flask

    app = Flask("shop")

    @app.get("/books/<int:book_id>")
    def book(book_id: int) -> dict[str, int]:
        return {"id": book_id}

    @app.get("/books")
    def books() -> list[int]:
        return [1, 2, 3]

    scenario = parse_scenario("[params]\nbook_id = [1, 2]\n")
    report = diagnose(app, runs=2, scenario=scenario)
    routes = {(r.method, r.route): r.requests for r in report.routes}
    assert routes == {("GET", "/books/<int:book_id>"): 2, ("GET", "/books"): 2} or routes == {
        ("GET", "/books/{book_id}"): 2,
        ("GET", "/books"): 2,
    }
    # Repeated identical GET responses without validators: an HTTP caching finding.
    assert "no-http-caching" in {f.code for f in report.findings}


def test_url_target_reads_server_timing(serve: Any) -> None:
    import lagless

    app, calls = _shop()
    base = serve(lagless.instrument(app))
    report = diagnose(base, runs=3)
    assert report.run.limited
    by_route = {r.route: r for r in report.routes}
    assert {"/items", "/items/{item_id}", "/", "/asset.css"} <= set(by_route)
    rep = by_route["/items"].representative
    assert rep.attrs["source"] == "server-timing"
    assert rep.attrs["server_timing"]["total"]["dur"] == pytest.approx(rep.duration_ms, abs=0.01)
    assert not rep.spans
    assert "accept-encoding" in rep.request_headers
    assert "no-http-caching" in {f.code for f in report.findings}
    assert "delete" not in calls


def test_parse_server_timing() -> None:
    value = 'db;dur=3.25;desc="4 queries", cache;desc=miss, app;dur=1, total;dur=9.5, bad;dur=x'
    assert parse_server_timing(value) == {
        "db": {"dur": 3.25, "desc": "4 queries"},
        "cache": {"desc": "miss"},
        "app": {"dur": 1.0},
        "total": {"dur": 9.5},
        "bad": {},
    }


def test_an_app_with_no_route_is_a_clear_error() -> None:
    from starlette.applications import Starlette

    from lagless.errors import LaglessError

    with pytest.raises(LaglessError, match="found no route"):
        asyncio.run(run(resolve_target(Starlette()), RunOptions(runs=1)))


def test_client_request_logs_are_silenced_during_the_run(
    fresh_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """An app that sets the root logger to INFO (Litestar does by default) must not get one
    httpx line per doctor request; the loggers' own levels come back afterwards."""
    import logging

    app, _ = _shop()
    httpx_logger = logging.getLogger("httpx")
    httpx_logger.setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.INFO):
            asyncio.run(run(resolve_target(app), RunOptions(runs=1)))
        assert not [r for r in caplog.records if r.name in ("httpx", "httpcore")]
        assert httpx_logger.level == logging.INFO
    finally:
        httpx_logger.setLevel(logging.NOTSET)


def test_url_target_query_count_comes_from_server_timing() -> None:
    """A server's spans stay there, but its Server-Timing names the query count: the per-route
    table shows it instead of 0."""
    from lagless._scenario import PreparedRequest, RequestSpec
    from lagless.doctor._client import Response, response_trace
    from lagless.doctor._stats import route_stats

    req = PreparedRequest(RequestSpec("GET", "/books", "books"), "GET", "/books", (), None)
    traces = [
        response_trace(
            req,
            "/books",
            Response(200, {"server-timing": timing}, b"[]", 2, 1_000_000),
        )
        for timing in ('db;dur=0.4;desc="21 queries", total;dur=5', 'db;dur=0.1;desc="1 query"')
    ]
    assert [t.attrs["queries"] for t in traces] == [21, 1]
    assert route_stats(traces)[0].mean_queries == 11
    bare = response_trace(req, "/books", Response(200, {}, b"[]", 2, 1_000_000))
    assert "queries" not in bare.attrs

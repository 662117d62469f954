"""The dashboard: off by default, token-protected, localhost-only without a token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lagless._runtime import Runtime
from lagless.monitor import Monitor, MonitorMiddleware, MonitorWSGIMiddleware
from lagless.monitor._http import Request, cookie_value, is_local
from tests.monitor._traces import FakeClock, make_trace

TOKEN = "d" * 32


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b"the app's own 404"})


def monitor(rt: Runtime, **settings: Any) -> Monitor:
    rt.configure(**settings)
    mon = Monitor(runtime=rt, clock=FakeClock(), background=False).install()
    mon.observe(make_trace("/items/{id}", duration_ms=12))
    mon.observe(make_trace("/items/{id}", duration_ms=700, status=500))
    return mon


def client(mon: Monitor, ip: str = "127.0.0.1", host: str = "localhost:8000") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=MonitorMiddleware(app, monitor=mon), client=(ip, 5555))
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}")


@pytest.mark.parametrize(
    ("client_ip", "headers", "local"),
    [
        ("127.0.0.1", {"host": "localhost:8000"}, True),
        ("::1", {"host": "[::1]:8000"}, True),
        ("127.0.0.1", {"host": "127.0.0.1"}, True),
        ("10.0.0.5", {"host": "localhost"}, False),
        ("127.0.0.1", {"host": "attacker.example"}, False),  # DNS rebinding
        ("127.0.0.1", {"host": "localhost", "x-forwarded-for": "203.0.113.1"}, False),
        ("127.0.0.1", {"host": "localhost", "forwarded": "for=203.0.113.1"}, False),
        # Regression: only XFF and Forwarded were checked; nginx setups often send X-Real-IP.
        ("127.0.0.1", {"host": "localhost", "x-real-ip": "203.0.113.1"}, False),
        ("127.0.0.1", {"host": "localhost", "via": "1.1 proxy"}, False),
        ("127.0.0.1", {"host": "localhost", "x-forwarded-host": "shop.example"}, False),
        (None, {"host": "localhost"}, False),
        ("not-an-ip", {"host": "localhost"}, False),
    ],
)
def test_what_counts_as_localhost(
    client_ip: str | None, headers: dict[str, str], local: bool
) -> None:
    assert is_local(Request("GET", "/_lagless/", headers=headers, client=client_ip)) is local


async def test_off_by_default(fresh_runtime: Runtime) -> None:
    mon = monitor(fresh_runtime)
    async with client(mon) as c:
        r = await c.get("/_lagless/")
    assert (r.status_code, r.content) == (404, b"the app's own 404")


async def test_without_a_token_only_localhost_gets_in(fresh_runtime: Runtime) -> None:
    mon = monitor(fresh_runtime, dashboard=True)
    async with client(mon) as c:
        page = await c.get("/_lagless/")
        assert page.status_code == 200
        assert b"<title>lagless" in page.content
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
    async with client(mon, ip="198.51.100.7", host="shop.example") as c:
        for path in ("/_lagless/", "/_lagless/api/summary", "/_lagless/static/dashboard.js"):
            r = await c.get(path)
            assert r.status_code == 403, path
            assert b"dashboard_token" in r.content
    async with client(mon, host="evil.example") as c:
        assert (await c.get("/_lagless/api/summary")).status_code == 403


async def test_with_a_token_everyone_needs_it_even_localhost(fresh_runtime: Runtime) -> None:
    mon = monitor(fresh_runtime, dashboard=True, dashboard_token=TOKEN)
    async with client(mon) as c:
        assert (await c.get("/_lagless/")).status_code == 401
        assert (await c.get("/_lagless/?token=wrong")).status_code == 401
        bearer = await c.get("/_lagless/api/summary", headers={"authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200
    async with client(mon, ip="198.51.100.7", host="shop.example") as c:
        first = await c.get(f"/_lagless/?token={TOKEN}")
        assert first.status_code == 303
        assert first.headers["location"] == "/_lagless/"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/_lagless/" in cookie
        assert TOKEN not in cookie  # a digest, not the secret
        c.cookies.set("lagless_dashboard", cookie_value(TOKEN))
        page = await c.get("/_lagless/")
        assert page.status_code == 200
        data = (await c.get("/_lagless/api/summary")).json()
    async with client(mon, ip="198.51.100.7", host="shop.example") as c:
        c.cookies.set("lagless_dashboard", "0" * 64)
        assert (await c.get("/_lagless/")).status_code == 401  # a forged cookie
    (route,) = data["routes"]
    assert route["route"] == "/items/{id}" and route["count"] == 2
    assert route["p99_ms"] == pytest.approx(700, rel=0.011)
    assert route["errors"] == 1
    assert set(route) >= {"p50_ms", "p95_ms", "rps", "series", "error_rate", "layers", "browser"}
    assert data["slow"][0]["duration_ms"] == 700  # over the 500 ms default threshold


async def test_static_files_and_unknown_paths(fresh_runtime: Runtime) -> None:
    mon = monitor(fresh_runtime, dashboard=True, dashboard_path="/ops/lagless")
    async with client(mon) as c:
        assert (await c.get("/ops/lagless")).status_code == 308
        js = await c.get("/ops/lagless/static/dashboard.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        css = await c.get("/ops/lagless/static/dashboard.css")
        assert css.headers["content-type"].startswith("text/css")
        assert (await c.get("/ops/lagless/static/../_stats.py")).status_code == 404
        assert (await c.get("/ops/lagless/static/nope.js")).status_code == 404
        assert (await c.post("/ops/lagless/api/summary")).status_code == 405
        assert (await c.get("/_lagless/")).status_code == 404  # the app's


def test_wsgi_dashboard_follows_the_same_rules(fresh_runtime: Runtime) -> None:
    mon = monitor(fresh_runtime, dashboard=True, dashboard_token=TOKEN)

    def wsgi(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"app"]

    wrapped = MonitorWSGIMiddleware(wsgi, monitor=mon)
    with httpx.Client(transport=httpx.WSGITransport(app=wrapped), base_url="http://localhost") as c:
        assert c.get("/_lagless/").status_code == 401
        ok = c.get("/_lagless/api/summary", headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["requests"] == 2
        assert c.get("/other").content == b"app"


async def test_monitor_requests_stay_out_of_the_statistics(fresh_runtime: Runtime) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    import lagless

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    fresh_runtime.configure(metrics=True, dashboard=True)
    mon = Monitor(runtime=fresh_runtime, background=False).install()
    star = Starlette(routes=[Route("/hello", hello)])
    star.add_middleware(MonitorMiddleware, monitor=mon)  # inside lagless's tracing
    traced = lagless.instrument(star)
    transport = httpx.ASGITransport(app=traced, client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
        await c.get("/hello")
        await c.get("/metrics")
        await c.get("/_lagless/api/summary")
    assert list(mon.stats.routes) == [("GET", "/hello")]

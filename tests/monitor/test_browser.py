"""The beacon collector: strict validation, size limits, rate limits, route matching."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import pytest

from lagless._runtime import Runtime
from lagless.monitor import Monitor, MonitorMiddleware, MonitorWSGIMiddleware
from lagless.monitor._browser import (
    MAX_BODY,
    MAX_ENTRIES,
    BeaconError,
    BrowserStats,
    RateLimiter,
    parse_beacon,
)
from tests.monitor._traces import FakeClock, make_trace


def entry(**kw: Any) -> dict[str, Any]:
    base = {
        "url": "/api/books/7",
        "duration": 40.0,
        "blocked": 2.0,
        "ttfb": 30.0,
        "download": 5.0,
        "server": 25.0,
    }
    base.update(kw)
    return base


def beacon(*entries: dict[str, Any], v: int = 1) -> bytes:
    return json.dumps({"v": v, "page": "/", "entries": list(entries)}).encode()


def test_a_valid_beacon_parses() -> None:
    (item,) = parse_beacon(beacon(entry(url="/api/books/7?secret=1")), "text/plain;charset=UTF-8")
    assert item == {
        "path": "/api/books/7",
        "duration": 40.0,
        "blocked": 2.0,
        "ttfb": 30.0,
        "download": 5.0,
        "server": 25.0,
    }
    (no_server,) = parse_beacon(beacon(entry(server=None)), "application/json")
    assert no_server["server"] is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"\xff\xfe", 400),
        (b"[]", 400),
        (beacon(entry(), v=2), 400),
        (json.dumps({"v": 1}).encode(), 400),
        (json.dumps({"v": 1, "entries": []}).encode(), 400),
        (json.dumps({"v": 1, "entries": "x"}).encode(), 400),
        (json.dumps({"v": 1, "entries": [1]}).encode(), 400),
        (beacon(entry(url="")), 400),
        (beacon(entry(url=123)), 400),
        (beacon(entry(url="x" * 3000)), 400),
        (beacon(entry(url="https://evil.example/")), 400),
        (beacon(entry(duration=-1)), 400),
        (beacon(entry(duration=1e12)), 400),
        (beacon(entry(duration=True)), 400),
        (beacon(entry(duration="12")), 400),
        (b'{"v":1,"entries":[{"url":"/a","duration":NaN,"blocked":0,"ttfb":0,"download":0}]}', 400),
        (beacon({"url": "/a", "duration": 1}), 400),
        (beacon(*[entry()] * (MAX_ENTRIES + 1)), 413),
        (b" " * (MAX_BODY + 1), 413),
    ],
)
def test_malformed_and_oversized_beacons_are_refused(body: bytes, status: int) -> None:
    with pytest.raises(BeaconError) as info:
        parse_beacon(body, "text/plain")
    assert info.value.status == status


def test_only_json_content_types() -> None:
    with pytest.raises(BeaconError) as info:
        parse_beacon(beacon(entry()), "application/x-www-form-urlencoded")
    assert info.value.status == 415


def test_rate_limit_per_client_with_a_bounded_table() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(rate=1.0, burst=3.0, max_clients=10, clock=clock)
    assert [limiter.allow("a") for _ in range(5)] == [True, True, True, False, False]
    assert limiter.allow("b")  # another client has its own bucket
    clock.advance(1.0)
    assert limiter.allow("a") and not limiter.allow("a")
    for i in range(100):
        limiter.allow(f"c{i}")
    assert len(limiter._buckets) == 10


def test_paths_match_route_templates() -> None:
    stats = BrowserStats()
    templates = ["/api/books/{id}", "/api/books/by-isbn/{isbn}", "/api/books", "/{a}/{b}/{c}/{d}"]
    assert stats.match("/api/books", templates) == "/api/books"
    assert stats.match("/api/books/12", templates) == "/api/books/{id}"
    assert stats.match("/api/books/by-isbn/978", templates) == "/api/books/by-isbn/{isbn}"
    assert stats.match("/elsewhere", templates) is None
    stats.record(parse_beacon(beacon(entry(), entry(url="/zzz"))), templates)
    assert stats.routes["/api/books/{id}"].count == 1
    assert stats.unmatched == 1


def make_monitor(rt: Runtime) -> tuple[Monitor, FakeClock]:
    rt.configure(browser_timing=True)
    mono = FakeClock(0.0)
    mon = Monitor(runtime=rt, clock=FakeClock(), monotonic=mono, background=False).install()
    mon.observe(make_trace("/api/books/{id}", path="/api/books/7", duration_ms=25))
    return mon, mono


async def test_the_endpoint_records_rejects_and_rate_limits(fresh_runtime: Runtime) -> None:
    mon, mono = make_monitor(fresh_runtime)
    app = MonitorMiddleware(lambda s, r, se: None, monitor=mon)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        script = await c.get("/_lagless/beacon.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert b"sendBeacon" in script.content
        ok = await c.post(
            "/_lagless/beacon", content=beacon(entry()), headers={"content-type": "text/plain"}
        )
        assert ok.status_code == 204
        assert (await c.post("/_lagless/beacon", content=b"{")).status_code == 400
        big = await c.post("/_lagless/beacon", content=b"x" * (MAX_BODY + 10))
        assert big.status_code == 413

        # Chunked, no Content-Length: the reader stops at the limit.
        async def chunks() -> Any:
            for _ in range(40):
                yield b"y" * 1024

        assert (await c.post("/_lagless/beacon", content=chunks())).status_code == 413
        assert (await c.get("/_lagless/beacon")).status_code == 405
        statuses = [
            (await c.post("/_lagless/beacon", content=beacon(entry()))).status_code
            for _ in range(12)
        ]
        assert 429 in statuses
        mono.advance(60)
        assert (await c.post("/_lagless/beacon", content=beacon(entry()))).status_code == 204
    assert mon.browser is not None
    br = mon.browser.routes["/api/books/{id}"]
    assert br.count >= 2
    assert br.network.quantile(0.5) == pytest.approx(0.015, rel=0.05)  # 40 ms - 25 ms


def test_the_wsgi_endpoint_refuses_oversized_bodies(fresh_runtime: Runtime) -> None:
    mon, _ = make_monitor(fresh_runtime)
    app = MonitorWSGIMiddleware(lambda e, s: [], monitor=mon)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as c:
        assert c.post("/_lagless/beacon", content=b"x" * (MAX_BODY + 1)).status_code == 413
        assert c.post("/_lagless/beacon", content=b"[1]").status_code == 400
        assert c.post("/_lagless/beacon", content=beacon(entry())).status_code == 204


async def test_beacons_are_off_unless_browser_timing_is_on(fresh_runtime: Runtime) -> None:
    mon = Monitor(runtime=fresh_runtime, background=False)
    assert not mon.owns("/_lagless/beacon")


async def test_the_snippet_is_injected_into_html_pages_only(fresh_runtime: Runtime) -> None:
    fresh_runtime.configure(browser_timing=True)
    mon = Monitor(runtime=fresh_runtime, background=False)
    seen: list[Any] = []

    async def site(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope["headers"]))
        if scope["path"] == "/page":
            ctype, body, extra = (
                b"text/html; charset=utf-8",
                [b"<html><HEAD><title>t</title>", b"</head><body>x</body></html>"],
                [],
            )
        elif scope["path"] == "/zipped":
            ctype, body = b"text/html", [gzip.compress(b"<html></html>")]
            extra = [(b"content-encoding", b"gzip")]
        else:
            ctype, body, extra = b"application/json", [b"{}"], []
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", ctype), *extra],
            }
        )
        for i, chunk in enumerate(body):
            await send(
                {"type": "http.response.body", "body": chunk, "more_body": i < len(body) - 1}
            )

    app = MonitorMiddleware(site, monitor=mon, inject_snippet=True)
    html = {"accept": "text/html,*/*", "accept-encoding": "gzip, br"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        page = await c.get("/page", headers=html)
        api = await c.get("/api", headers={"accept": "application/json", "accept-encoding": "gzip"})
        zipped = await c.get("/zipped", headers={"accept": "text/html"})
    tag = b'<script src="/_lagless/beacon.js" defer></script>'
    assert page.content == b"<html><HEAD><title>t</title>" + tag + b"</head><body>x</body></html>"
    assert int(page.headers["content-length"]) == len(page.content)
    assert b"accept-encoding" not in seen[0]  # the page is asked for uncompressed
    assert api.content == b"{}" and seen[1][b"accept-encoding"] == b"gzip"
    assert zipped.content == b"<html></html>"  # encoded: passed through untouched


async def test_the_snippet_is_not_put_into_a_304_or_204(fresh_runtime: Runtime) -> None:
    # Regression: a 304 keeping its text/html type (Starlette's StaticFiles does) got the
    # snippet as a body, which breaks HTTP/1.1 framing (RFC 9110 §15.4.5: 304 has no body).
    fresh_runtime.configure(browser_timing=True)
    mon = Monitor(runtime=fresh_runtime, background=False)

    async def site(scope: Any, receive: Any, send: Any) -> None:
        status = int(scope["path"].strip("/"))
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"etag", b'"x"')]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    app = MonitorMiddleware(site, monitor=mon, inject_snippet=True)
    for status in (304, 204):
        sent.clear()
        scope = {
            "type": "http",
            "method": "GET",
            "path": f"/{status}",
            "query_string": b"",
            "headers": [(b"accept", b"text/html"), (b"if-none-match", b'"x"')],
        }
        await app(scope, receive, send)
        assert sent[0]["status"] == status
        assert b"".join(m.get("body", b"") for m in sent[1:]) == b""
        assert all(k != b"content-length" for k, _ in sent[0]["headers"])


async def test_non_ascii_or_huge_content_length_is_not_a_crash() -> None:
    # Regression: "²" passed str.isdigit and made int() raise inside the endpoint.
    from io import BytesIO

    from lagless.monitor._asgi import _read_body
    from lagless.monitor._otel import _host_port
    from lagless.monitor._wsgi import read_body

    assert read_body({"CONTENT_LENGTH": "\xb2", "wsgi.input": BytesIO(b"x")}, 10) == b""
    assert read_body({"CONTENT_LENGTH": "9" * 5000, "wsgi.input": BytesIO(b"x")}, 10) is None
    assert _host_port("example.org:\xb2") == ("example.org", None)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"x"}

    scope = {"headers": [(b"content-length", b"9" * 5000)]}
    assert await _read_body(scope, receive, 10) is None

"""On-demand profiling: exactly one request, only with the configured token."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

pytest.importorskip("pyinstrument")

from lagless._runtime import Runtime
from lagless.monitor import Monitor, MonitorMiddleware, MonitorWSGIMiddleware
from lagless.monitor._profiling import find_flag

TOKEN = "p" * 24


def busy_work() -> int:
    # Enough work for the sampler to see (it samples every 0.5 ms).
    total = 0
    deadline = time.perf_counter() + 0.02
    while time.perf_counter() < deadline:
        total += sum(range(200))
    return total


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    busy_work()
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"app response"})


def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
    busy_work()
    start_response("202 Accepted", [("content-type", "text/plain")])
    return [b"app response"]


def make_monitor(rt: Runtime, token: str | None) -> Monitor:
    rt.configure(profile_token=token)
    return Monitor(runtime=rt, background=False).install()


async def asgi_get(mon: Monitor, url: str, **kw: Any) -> httpx.Response:
    app = MonitorMiddleware(asgi_app, monitor=mon)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.get(url, **kw)


def wsgi_get(mon: Monitor, url: str, **kw: Any) -> httpx.Response:
    app = MonitorWSGIMiddleware(wsgi_app, monitor=mon)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as c:
        return c.get(url, **kw)


def test_flag_parsing() -> None:
    assert find_flag([(b"x-lagless-profile", b"abc")], b"") == ("abc", "html")
    assert find_flag([], "a=1&lagless_profile=abc&lagless_profile_format=speedscope") == (
        "abc",
        "speedscope",
    )
    assert find_flag([(b"accept", b"*/*")], b"q=lagless") is None


async def test_without_a_configured_token_the_flag_is_ignored(fresh_runtime: Runtime) -> None:
    mon = make_monitor(fresh_runtime, None)
    r = await asgi_get(mon, "/x", headers={"x-lagless-profile": TOKEN})
    assert (r.status_code, r.content) == (201, b"app response")
    r = await asgi_get(mon, f"/x?lagless_profile={TOKEN}")
    assert (r.status_code, r.content) == (201, b"app response")
    w = wsgi_get(mon, "/x", headers={"x-lagless-profile": TOKEN})
    assert (w.status_code, w.content) == (202, b"app response")


async def test_a_wrong_token_is_refused_before_the_app_runs(fresh_runtime: Runtime) -> None:
    mon = make_monitor(fresh_runtime, TOKEN)
    for given in ("", "nope", TOKEN[:-1], TOKEN + "x"):
        r = await asgi_get(mon, "/x", headers={"x-lagless-profile": given})
        assert r.status_code == 403, given
        assert b"app response" not in r.content
        w = wsgi_get(mon, f"/x?lagless_profile={given}")
        assert w.status_code == 403, given
    # No flag at all: an ordinary request.
    r = await asgi_get(mon, "/x")
    assert (r.status_code, r.content) == (201, b"app response")


async def test_the_right_token_returns_the_profile_of_that_request(fresh_runtime: Runtime) -> None:
    mon = make_monitor(fresh_runtime, TOKEN)
    r = await asgi_get(mon, "/x", headers={"x-lagless-profile": TOKEN})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-lagless-profiled-status"] == "201"
    assert r.headers["cache-control"] == "no-store"
    assert b"pyinstrument" in r.content.lower()
    s = await asgi_get(
        mon, "/x", headers={"x-lagless-profile": TOKEN, "x-lagless-profile-format": "speedscope"}
    )
    doc = json.loads(s.content)
    assert doc["$schema"].startswith("https://www.speedscope.app/")
    frames = {f["name"] for f in doc["shared"]["frames"]}
    assert "busy_work" in frames
    w = wsgi_get(mon, f"/x?lagless_profile={TOKEN}&lagless_profile_format=speedscope")
    assert w.headers["x-lagless-profiled-status"] == "202"
    assert "busy_work" in {f["name"] for f in json.loads(w.content)["shared"]["frames"]}
    bad = await asgi_get(mon, f"/x?lagless_profile={TOKEN}&lagless_profile_format=pdf")
    assert bad.status_code == 400


async def test_one_profile_at_a_time(fresh_runtime: Runtime) -> None:
    mon = make_monitor(fresh_runtime, TOKEN)
    assert mon.profile.acquire()
    try:
        r = await asgi_get(mon, "/x", headers={"x-lagless-profile": TOKEN})
        assert r.status_code == 429
    finally:
        mon.profile.release()


def test_short_tokens_are_refused_at_start_up(fresh_runtime: Runtime) -> None:
    from lagless.errors import ConfigError

    fresh_runtime.configure(profile_token="short")
    with pytest.raises(ConfigError, match="at least 16"):
        Monitor(runtime=fresh_runtime)

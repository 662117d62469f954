"""The ASGI response cache and conditional middleware through Starlette's and FastAPI's test
clients; httplint checks every response."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from lagless.cache import (
    CachePolicies,
    CachePolicy,
    ConditionalMiddleware,
    MemoryBackend,
    ResponseCacheMiddleware,
)
from lagless.cache._conditional import http_date
from tests.cache._clients import linted_asyncclient, linted_testclient
from tests.cache._lint import assert_clean
from tests.cache.conftest import FakeClock

calls: dict[str, int] = {}


def count(name: str) -> None:
    calls[name] = calls.get(name, 0) + 1


async def product(request: Request) -> Response:
    count("product")
    return JSONResponse({"id": request.path_params["pid"], "q": dict(request.query_params)})


async def negotiated(request: Request) -> Response:
    count("negotiated")
    kind = request.headers.get("accept", "")
    body = "<p>hi</p>" if "html" in kind else "hi"
    return PlainTextResponse(body, headers={"Vary": "Accept"})


async def me(request: Request) -> Response:
    count("me")
    who = request.headers.get("authorization") or request.headers.get("cookie") or "anonymous"
    return PlainTextResponse(f"hello {who}")


async def login(request: Request) -> Response:
    count("login")
    response = PlainTextResponse("welcome")
    response.set_cookie("sid", f"secret-{calls['login']}")
    return response


async def vary_star(request: Request) -> Response:
    count("vary_star")
    return PlainTextResponse("x", headers={"Vary": "*"})


async def private(request: Request) -> Response:
    count("private")
    return PlainTextResponse("mine", headers={"Cache-Control": "private, max-age=60"})


async def no_store(request: Request) -> Response:
    count("no_store")
    return PlainTextResponse("secret", headers={"Cache-Control": "no-store"})


async def stream(request: Request) -> Response:
    count("stream")

    async def chunks() -> Any:
        for _ in range(4):
            yield b"x" * 100

    return StreamingResponse(chunks(), media_type="text/plain")


async def slow(request: Request) -> Response:
    count("slow")
    await asyncio.sleep(0.05)
    return PlainTextResponse("slow")


async def article(request: Request) -> Response:
    count("article")
    if request.path_params["aid"] not in VERSIONS:
        return PlainTextResponse("no such article", status_code=404)
    if request.method == "PUT":
        return PlainTextResponse("saved")
    return PlainTextResponse("article body")


async def error(request: Request) -> Response:
    count("error")
    return PlainTextResponse("boom", status_code=500)


VERSIONS = {"1": 3}
MODIFIED = 1_700_000_000.0

POLICIES = CachePolicies(
    {
        "GET /products/{pid}": CachePolicy(max_age=60, s_maxage=120),
        "/negotiated": CachePolicy(max_age=60),
        "/me": CachePolicy(max_age=60),
        "/me-cookie": CachePolicy(max_age=60, vary_on_cookie=True, vary_on_authorization=True),
        "/login": CachePolicy(max_age=60),
        "/vary-star": CachePolicy(max_age=60),
        "/private": CachePolicy(max_age=60),
        "/no-store": CachePolicy(max_age=60),
        "/stream": CachePolicy(max_age=60),
        "/slow": CachePolicy(max_age=60),
        "/error": CachePolicy(max_age=60),
        "GET /articles/{aid}": CachePolicy(
            max_age=0,
            no_cache=True,
            etag=lambda r: VERSIONS.get(r.params["aid"]),
            last_modified=lambda r: MODIFIED if r.params["aid"] in VERSIONS else None,
        ),
        "PUT /articles/{aid}": CachePolicy(etag=lambda r: VERSIONS.get(r.params["aid"])),
    }
)

ROUTES = [
    Route("/products/{pid}", product),
    Route("/negotiated", negotiated),
    Route("/me", me),
    Route("/me-cookie", me),
    Route("/login", login),
    Route("/vary-star", vary_star),
    Route("/private", private),
    Route("/no-store", no_store),
    Route("/stream", stream),
    Route("/slow", slow),
    Route("/error", error),
    Route("/articles/{aid}", article, methods=["GET", "HEAD", "PUT"]),
]


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


@pytest.fixture
def app(clock: FakeClock) -> ResponseCacheMiddleware:
    return ResponseCacheMiddleware(
        Starlette(routes=ROUTES),
        policies=POLICIES,
        backend=MemoryBackend(),
        max_body=256,
        clock=clock,
    )


@pytest.fixture
def client(app: ResponseCacheMiddleware) -> Iterator[Any]:
    with linted_testclient(app) as c:
        yield c


def test_miss_then_hit_with_age_and_cache_status(client: Any, clock: FakeClock) -> None:
    first = client.get("/products/1?b=2&a=1")
    assert first.status_code == 200
    assert first.headers["cache-status"] == "lagless; fwd=uri-miss; stored"
    assert first.headers["cache-control"] == "public, max-age=60, s-maxage=120"
    etag = first.headers["etag"]
    clock.advance(7)
    second = client.get("/products/1?a=1&b=2")  # same query, other order
    assert second.status_code == 200 and second.json() == first.json()
    assert second.headers["age"] == "7"
    assert second.headers["cache-status"] == "lagless; hit; ttl=113"
    assert second.headers["etag"] == etag
    assert "date" in second.headers
    assert calls["product"] == 1
    clock.advance(120)  # past the server TTL (s-maxage)
    third = client.get("/products/1?a=1&b=2")
    assert third.headers["cache-status"] == "lagless; fwd=uri-miss; stored"
    assert calls["product"] == 2


def test_conditional_requests_on_hits(client: Any) -> None:
    first = client.get("/products/9")
    etag = first.headers["etag"]
    not_modified = client.get("/products/9", headers={"If-None-Match": f'"x", {etag}'})
    assert not_modified.status_code == 304 and not_modified.content == b""
    for name in ("etag", "cache-control", "date", "age", "cache-status"):
        assert name in not_modified.headers
    assert "content-type" not in not_modified.headers
    assert client.get("/products/9", headers={"If-None-Match": '"other"'}).status_code == 200
    since = client.get("/products/9", headers={"If-Modified-Since": http_date(4_000_000_000)})
    assert since.status_code == 200  # no Last-Modified to compare with
    assert calls["product"] == 1


def test_conditional_request_on_a_miss_still_fills_the_cache(client: Any) -> None:
    etag = client.get("/products/5").headers["etag"]
    fresh_app_client = client  # same app: drop the entry by making a new variant of the URL
    answer = fresh_app_client.get("/products/5?new=1", headers={"If-None-Match": etag})
    # The body differs (query echoed), so the ETag differs: full 200, stored
    assert answer.status_code == 200
    again = fresh_app_client.get(
        "/products/5?new=1", headers={"If-None-Match": answer.headers["etag"]}
    )
    assert again.status_code == 304
    assert calls["product"] == 2


def test_head_is_served_from_the_get_entry(client: Any) -> None:
    assert (
        client.head("/products/3").headers["cache-status"] == "lagless; fwd=uri-miss; detail=method"
    )
    client.get("/products/3")
    head = client.head("/products/3")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["cache-status"].startswith("lagless; hit")
    assert calls["product"] == 2


def test_vary_selects_variants(client: Any) -> None:
    html = client.get("/negotiated", headers={"Accept": "text/html"})
    text = client.get("/negotiated", headers={"Accept": "text/plain"})
    assert html.text == "<p>hi</p>" and text.text == "hi"
    assert text.headers["cache-status"] == "lagless; fwd=vary-miss; stored"
    assert client.get("/negotiated", headers={"Accept": "text/html"}).text == "<p>hi</p>"
    assert client.get("/negotiated", headers={"Accept": " text/plain"}).text == "hi"
    assert calls["negotiated"] == 2


def test_authorization_and_cookies_never_share(client: Any) -> None:
    alice = client.get("/me", headers={"Authorization": "Bearer alice"})
    bob = client.get("/me", headers={"Authorization": "Bearer bob"})
    assert alice.text == "hello Bearer alice" and bob.text == "hello Bearer bob"
    assert alice.headers["cache-status"] == "lagless; fwd=bypass; detail=authorization"
    assert alice.headers["cache-control"] == "private, max-age=60"  # never public for a user
    carol = client.get("/me", headers={"Cookie": "sid=carol"})
    dave = client.get("/me", headers={"Cookie": "sid=dave"})
    assert carol.text == "hello sid=carol" and dave.text == "hello sid=dave"
    assert carol.headers["cache-status"] == "lagless; fwd=bypass; detail=cookie"
    anon = client.get("/me")
    assert anon.text == "hello anonymous"
    assert client.get("/me").headers["cache-status"].startswith("lagless; hit")
    # An anonymous entry is never served to a request with credentials.
    assert client.get("/me", headers={"Authorization": "Bearer eve"}).text == "hello Bearer eve"
    assert calls["me"] == 6


def test_hosts_never_share(client: Any) -> None:
    a = client.get("/products/1", headers={"Host": "tenant-a.example"})
    b = client.get("/products/1", headers={"Host": "tenant-b.example"})
    assert a.headers["cache-status"].endswith("stored")
    assert b.headers["cache-status"].endswith("stored")  # a miss: its own entry
    assert (
        client.get("/products/1", headers={"Host": "tenant-a.example"})
        .headers["cache-status"]
        .startswith("lagless; hit")
    )
    assert calls["product"] == 2


def test_opted_in_credentials_are_part_of_the_key(client: Any) -> None:
    a1 = client.get("/me-cookie", headers={"Cookie": "sid=a"})
    b1 = client.get("/me-cookie", headers={"Cookie": "sid=b"})
    a2 = client.get("/me-cookie", headers={"Cookie": "sid=a"})
    b2 = client.get("/me-cookie", headers={"Cookie": "sid=b"})
    assert (a1.text, b1.text, a2.text, b2.text) == ("hello sid=a", "hello sid=b") * 2
    assert a2.headers["cache-status"].startswith("lagless; hit")
    assert "cookie" in a1.headers["vary"].lower()
    t1 = client.get("/me-cookie", headers={"Authorization": "Bearer t1"})
    t2 = client.get("/me-cookie", headers={"Authorization": "Bearer t2"})
    assert (t1.text, t2.text) == ("hello Bearer t1", "hello Bearer t2")
    assert calls["me"] == 4


def test_set_cookie_is_never_replayed(client: Any) -> None:
    first = client.get("/login")
    client.cookies.clear()
    second = client.get("/login")
    client.cookies.clear()
    assert first.headers["set-cookie"].startswith("sid=secret-1")
    assert second.headers["set-cookie"].startswith("sid=secret-2")
    assert first.headers["cache-status"] == "lagless; fwd=uri-miss; detail=set-cookie"
    assert first.headers["cache-control"] == "private, max-age=60"
    assert calls["login"] == 2


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/vary-star", "vary-star"),
        ("/private", "private"),
        ("/no-store", "no-store"),
        ("/error", "status"),
    ],
)
def test_uncacheable_responses_are_not_stored(client: Any, path: str, detail: str) -> None:
    first = client.get(path)
    second = client.get(path)
    assert first.headers["cache-status"] == f"lagless; fwd=uri-miss; detail={detail}"
    assert second.headers["cache-status"] == first.headers["cache-status"]
    assert calls[path.strip("/").replace("-", "_")] == 2


def test_request_no_cache_goes_to_origin(client: Any) -> None:
    client.get("/products/2")
    again = client.get("/products/2", headers={"Cache-Control": "no-cache"})
    assert again.headers["cache-status"] == "lagless; fwd=bypass; detail=request"
    assert calls["product"] == 2


def test_large_streams_pass_through_unstored(client: Any) -> None:
    first = client.get("/stream")
    assert first.text == "x" * 400
    assert first.headers["cache-status"] == "lagless; fwd=uri-miss; detail=streamed"
    assert "etag" not in first.headers
    client.get("/stream")
    assert calls["stream"] == 2


def test_validators_answer_before_the_view(client: Any) -> None:
    full = client.get("/articles/1")
    assert full.headers["etag"] == '"3"'
    assert full.headers["last-modified"] == http_date(MODIFIED)
    assert full.headers["cache-control"] == "public, no-cache, max-age=0"
    assert calls["article"] == 1
    cond = client.get("/articles/1", headers={"If-None-Match": '"3"'})
    assert cond.status_code == 304 and cond.headers["etag"] == '"3"'
    assert cond.headers["cache-control"] == "public, no-cache, max-age=0"
    since = client.get("/articles/1", headers={"If-Modified-Since": http_date(MODIFIED)})
    assert since.status_code == 304
    head = client.head("/articles/1", headers={"If-None-Match": 'W/"3"'})
    assert head.status_code == 304
    assert calls["article"] == 1  # none of the conditional requests ran the view
    assert client.get("/articles/1", headers={"If-None-Match": '"2"'}).status_code == 200
    # Unknown article: the validators say None, the view answers 404, no precondition applies.
    assert client.get("/articles/404", headers={"If-None-Match": "*"}).status_code == 404
    assert calls["article"] == 3


def test_unsafe_methods_get_412_on_stale_validators(client: Any) -> None:
    stale = client.put("/articles/1", headers={"If-Match": '"2"'})
    assert stale.status_code == 412 and stale.content == b""
    assert calls.get("article", 0) == 0
    ok = client.put("/articles/1", headers={"If-Match": '"3"'})
    assert ok.status_code == 200 and ok.text == "saved"
    create_only = client.put("/articles/1", headers={"If-None-Match": "*"})
    assert create_only.status_code == 412
    assert calls["article"] == 1


async def test_concurrent_misses_reach_the_app_once(app: ResponseCacheMiddleware) -> None:
    async with linted_asyncclient(app) as client:
        responses = await asyncio.gather(*(client.get("/slow") for _ in range(50)))
    assert all(r.text == "slow" for r in responses)
    assert calls["slow"] == 1
    assert sum(r.headers["cache-status"].startswith("lagless; hit") for r in responses) == 49


def test_non_http_scopes_pass_through(app: ResponseCacheMiddleware) -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    wrapped = ResponseCacheMiddleware(inner, policies=POLICIES)
    asyncio.run(wrapped({"type": "lifespan"}, None, None))
    asyncio.run(ConditionalMiddleware(inner)({"type": "websocket"}, None, None))
    assert seen == ["lifespan", "websocket"]


# --- ConditionalMiddleware on every response ------------------------------------------------------
@pytest.fixture
def cond_client() -> Iterator[Any]:
    app = ConditionalMiddleware(Starlette(routes=ROUTES), policies=POLICIES, max_body=256)
    with linted_testclient(app) as c:
        yield c


def test_conditional_middleware_etags_every_get(cond_client: Any) -> None:
    first = cond_client.get("/products/1")
    etag = first.headers["etag"]
    assert etag.startswith('"') and first.json()["id"] == "1"
    assert "cache-status" not in first.headers
    again = cond_client.get("/products/1", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert cond_client.get("/products/2", headers={"If-None-Match": etag}).status_code == 200
    assert calls["product"] == 3  # the middleware hashes the body: the view still runs


def test_conditional_middleware_leaves_streams_errors_and_posts(cond_client: Any) -> None:
    assert "etag" not in cond_client.get("/stream").headers
    error_response = cond_client.get("/error", headers={"If-None-Match": "*"})
    assert error_response.status_code == 500  # §13.2.1: only a would-be 2xx is conditional
    assert cond_client.post("/products/1").status_code == 405


def test_conditional_middleware_uses_validators(cond_client: Any) -> None:
    assert cond_client.get("/articles/1", headers={"If-None-Match": '"3"'}).status_code == 304
    assert cond_client.put("/articles/1", headers={"If-Match": '"1"'}).status_code == 412
    assert calls.get("article", 0) == 0


def test_fastapi_with_cached_function_and_spans() -> None:
    from fastapi import FastAPI

    import lagless
    from lagless.cache import Cache, cached

    cache = Cache(backend=MemoryBackend())
    loads = 0

    @cached(ttl=60, key="user:{uid}", cache=cache)
    async def load_user(uid: int) -> dict[str, Any]:
        nonlocal loads
        loads += 1
        return {"uid": uid}

    api = FastAPI()

    @api.get("/users/{uid}")
    async def get_user(uid: int) -> dict[str, Any]:
        return await load_user(uid)

    app = lagless.instrument(
        ConditionalMiddleware(
            api, policies=CachePolicies({"/users/{uid}": CachePolicy(max_age=30)})
        )
    )
    with linted_testclient(app) as client:
        first = client.get("/users/5")
        second = client.get("/users/5", headers={"If-None-Match": first.headers["etag"]})
    assert first.json() == {"uid": 5} and second.status_code == 304
    assert first.headers["cache-control"] == "public, max-age=30"
    assert loads == 1
    traces = lagless.recent_traces()
    cache_spans = [s for t in traces for s in t.spans if s.kind == "cache"]
    assert [s.get("hit") for s in cache_spans if s.name == "GET"] == [False, True]
    assert {s.get("key") for s in cache_spans} == {"user:{uid}"}


@pytest.mark.parametrize("streamed_by", ["conditional", "response-cache"])
async def test_streams_are_not_held_back(streamed_by: str) -> None:
    """An endless stream (server-sent events) must reach the client chunk by chunk: the app
    below sends its second chunk only after the client has received the first."""
    first_seen = asyncio.Event()

    async def events(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await first_seen.wait()
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": False})

    policies = CachePolicies({"/events": CachePolicy(max_age=60)})
    app = (
        ConditionalMiddleware(events, policies=policies)
        if streamed_by == "conditional"
        else ResponseCacheMiddleware(events, policies=policies)
    )
    scope = {"type": "http", "method": "GET", "path": "/events", "headers": [], "query_string": b""}
    bodies: list[bytes] = []
    started: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.append(message)
        if message["type"] == "http.response.body":
            bodies.append(message["body"])
            first_seen.set()

    await asyncio.wait_for(app(scope, receive, send), timeout=10)  # a hang guard, not a timing
    assert bodies == [b"data: 1\n\n", b"data: 2\n\n"]
    headers = [(n.decode(), v.decode()) for n, v in started[0]["headers"]]
    assert_clean("GET", "http://testserver/events", 200, headers, b"".join(bodies))

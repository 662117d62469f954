"""RFC 9111 §4.4: a successful answer to an unsafe request drops every stored variant of its
target URI and of same-host Location / Content-Location, in the ASGI, WSGI (Flask) and Django
response caches, with the memory and (real) Redis backends; httplint checks every response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import lagless
from lagless.cache import CachePolicies, CachePolicy, MemoryBackend, RedisBackend
from lagless.cache import ResponseCacheMiddleware as ASGICache
from lagless.cache._backend import backend_errors
from lagless.cache._invalidate import host_key, invalidation_tags, path_tag
from lagless.integrations.asgi import LaglessMiddleware
from tests.cache._clients import linted_asyncclient
from tests.cache.conftest import REDIS_TIMEOUT
from tests.cache.test_django import LintedClient, dj  # noqa: F401  (the Django fixture)
from tests.cache.test_redis import CountingAsync

POLICIES = CachePolicies(
    {
        "GET /items/{iid}": CachePolicy(max_age=60, vary=("accept",)),
        "GET /items/{iid}/nocache": CachePolicy(max_age=60, store=False),
        "GET /docs/{iid}": CachePolicy(max_age=60),
    }
)


# -- the rules, on plain values -----------------------------------------------------------------
def tags(method: str, status: int, headers: dict[str, str] | None = None, **kw: Any) -> list[str]:
    args: dict[str, Any] = {"scheme": "http", "host": "shop.example", "path": "/items/1"}
    args.update(kw)
    return invalidation_tags(
        method, status, response_headers=headers or {}, policies=POLICIES, **args
    )


def test_only_successful_unsafe_requests_invalidate() -> None:
    target = [path_tag("shop.example", "/items/1")]
    for method in ("POST", "PUT", "PATCH", "DELETE", "PURGE"):
        for status in (200, 201, 204, 301, 303, 399):
            assert tags(method, status) == target, (method, status)
        for status in (400, 404, 409, 412, 500, 503):
            assert tags(method, status) == [], (method, status)
    for method in ("GET", "HEAD", "OPTIONS", "TRACE"):
        assert tags(method, 200) == []


def test_location_and_content_location_same_host_only() -> None:
    mine = path_tag("shop.example", "/items/1")
    two = path_tag("shop.example", "/items/2")
    three = path_tag("shop.example", "/items/3")
    headers = {"location": "/items/2", "content-location": "http://SHOP.example:80/items/3"}
    assert tags("POST", 201, headers) == [mine, two, three]
    assert tags("POST", 201, {"location": "2"}) == [mine, two]  # relative to /items/1
    assert tags("POST", 201, {"location": "https://shop.example/items/2"}) == [mine, two]
    # RFC 9111 §4.4: another host's URI is never invalidated (nor junk, nor other schemes).
    for other in ("http://evil.example/items/2", "//evil.example/items/2", "ftp://x/items/2"):
        assert tags("POST", 201, {"location": other}) == [mine]
    assert tags("POST", 201, {"location": "http://[::1"}) == [mine]
    # Keyed on an absent Host, addressed to SERVER_NAME: the authority decides "same host".
    keyed = {"host": "", "authority": "shop.example"}
    assert tags("POST", 201, {"location": "http://shop.example/items/2"}, **keyed) == [
        path_tag("", "/items/1"),
        path_tag("", "/items/2"),
    ]
    # Percent-encoded references name the decoded path the framework routes on.
    assert tags("POST", 201, {"location": "/items/%C3%A9"}) == [
        mine,
        path_tag("shop.example", "/items/é"),
    ]


def test_paths_no_policy_stores_cost_nothing() -> None:
    assert tags("POST", 201, path="/orders") == []
    assert tags("POST", 201, path="/items/1/nocache") == []
    assert tags("POST", 201, {"location": "/orders/9"}, path="/orders") == []
    # Under a WSGI mount, policies see the path after SCRIPT_NAME; the tag keeps the full path.
    mounted = tags("PUT", 204, path="/api/items/1", script_name="/api")
    assert mounted == [path_tag("shop.example", "/api/items/1")]
    assert tags("PUT", 204, {"location": "/elsewhere/items/1"}, path="/api/items/1",
                script_name="/api") == mounted  # fmt: skip


def test_host_key_ignores_case_userinfo_and_default_ports() -> None:
    assert host_key(" Shop.Example:443 ") == host_key("u:p@shop.example:80") == "shop.example"
    assert host_key("shop.example:8080") == "shop.example:8080"
    assert path_tag("SHOP.example:80", "/a") == path_tag("shop.example", "/a")
    assert path_tag("shop.example", "/a") != path_tag("shop.example", "/b")


# -- the ASGI cache, memory and Redis --------------------------------------------------------
calls: dict[str, int] = {}
VERSION: dict[str, int] = {}


async def item(request: Request) -> Response:
    iid = request.path_params["iid"]
    calls[iid] = calls.get(iid, 0) + 1
    accept = request.headers.get("accept", "-")
    return PlainTextResponse(
        f"item {iid} v{VERSION.get(iid, 0)} {accept}", headers={"Vary": "Accept"}
    )


async def write(request: Request) -> Response:
    """Bumps ``?bump=`` (default: the path's item); answers ``?status=`` with the Location and
    Content-Location given in the query."""
    q = request.query_params
    bumped = q.get("bump") or request.path_params.get("iid", "")
    VERSION[bumped] = VERSION.get(bumped, 0) + 1
    headers = {}
    if "location" in q:
        headers["Location"] = q["location"]
    if "content_location" in q:
        headers["Content-Location"] = q["content_location"]
    return PlainTextResponse("done", status_code=int(q.get("status", "200")), headers=headers)


async def doc(request: Request) -> Response:
    iid = "doc" + request.path_params["iid"]
    calls[iid] = calls.get(iid, 0) + 1
    return PlainTextResponse(f"doc v{VERSION.get(iid, 0)}")


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/docs/{iid}", doc, methods=["GET"]),
            Route("/docs/{iid}", write, methods=["PUT"]),
            Route("/items/{iid}", item, methods=["GET"]),
            Route("/items/{iid}", write, methods=["PUT", "PATCH", "DELETE", "POST"]),
            Route("/items", write, methods=["POST"]),
        ]
    )


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    calls.clear()
    VERSION.clear()
    if request.param == "memory":
        yield MemoryBackend()
        return
    url = request.getfixturevalue("redis_url")
    client = CountingAsync.from_url(url)
    client.commands = []
    redis_backend = RedisBackend(
        async_client=client,
        prefix=request.getfixturevalue("redis_cleanup"),
        timeout=REDIS_TIMEOUT,
    )
    yield redis_backend
    await client.aclose()


async def status_of(client: httpx.AsyncClient, url: str, **headers: str) -> str:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200
    return response.headers["cache-status"]


async def test_asgi_unsafe_success_drops_every_variant(backend: Any) -> None:
    client = linted_asyncclient(ASGICache(starlette_app(), policies=POLICIES, backend=backend))
    variants: list[tuple[str, dict[str, str]]] = [
        ("/items/1", {"accept": "text/plain"}),
        ("/items/1", {"accept": "text/html"}),
        ("/items/1?page=2", {"accept": "text/plain"}),
        ("https://testserver/items/1", {"accept": "text/plain"}),
    ]
    other_host = ("/items/1", {"accept": "text/plain", "host": "other.example"})
    for url, headers in [*variants, other_host]:
        assert "stored" in await status_of(client, url, **headers)
        assert "hit" in await status_of(client, url, **headers)
    assert calls["1"] == 5
    if isinstance(backend, RedisBackend):  # the tag costs the hit path nothing: one GET
        commands = backend.async_client.commands
        await status_of(client, "/docs/1")
        commands.clear()
        assert "hit" in await status_of(client, "/docs/1")
        assert commands == ["GET"]
        assert (await client.put("/docs/1?bump=doc1")).status_code == 200
        assert "fwd=uri-miss" in await status_of(client, "/docs/1")

    # An error leaves everything in place.
    assert (await client.put("/items/1?status=409")).status_code == 409
    for url, headers in variants:
        assert "hit" in await status_of(client, url, **headers)

    assert (await client.put("/items/1")).status_code == 200
    for url, headers in variants:
        fresh = await client.get(url, headers=headers)
        assert fresh.headers["cache-status"].startswith("lagless; fwd=")
        assert fresh.text.startswith("item 1 v2 ")
    # Another host's entry is another target URI (RFC 9111 §2).
    assert "hit" in await status_of(client, other_host[0], **other_host[1])
    assert calls["1"] == 9


async def test_asgi_location_and_content_location(backend: Any) -> None:
    client = linted_asyncclient(ASGICache(starlette_app(), policies=POLICIES, backend=backend))
    for iid in ("2", "3", "4"):
        await status_of(client, f"/items/{iid}")
    created = await client.post("/items?status=201&bump=2&location=/items/2")
    assert created.status_code == 201
    assert "fwd=uri-miss" in await status_of(client, "/items/2")
    assert "hit" in await status_of(client, "/items/3")

    moved = await client.patch("/items/4?content_location=http://testserver/items/3")
    assert moved.status_code == 200
    assert "fwd=uri-miss" in await status_of(client, "/items/3")
    assert "fwd=uri-miss" in await status_of(client, "/items/4")

    foreign = await client.post("/items?status=201&location=http://evil.example/items/3")
    assert foreign.status_code == 201
    assert "hit" in await status_of(client, "/items/3")


async def test_asgi_invalidation_is_recorded_and_fails_open() -> None:
    dead = RedisBackend(url="redis://127.0.0.1:1/0", prefix="none:")  # nothing listens there
    app = LaglessMiddleware(ASGICache(starlette_app(), policies=POLICIES, backend=dead))
    async with linted_asyncclient(app) as client:
        assert (await client.delete("/items/5")).status_code == 200
    (trace,) = lagless.recent_traces()
    spans = [s for s in trace.spans if s.kind == "cache"]
    assert [(s.name, s.get("key")) for s in spans] == [("INVALIDATE", "resp:invalidate")]
    assert backend_errors.get("redis:invalidate_tags") == 1
    await dead.aclose()
    dead.close()


# -- WSGI through Flask, memory and Redis (sync client) ------------------------------------------
def flask_client(backend: Any) -> Any:
    from flask import Flask, Response, request

    from lagless.cache.flask import install
    from tests.cache.test_wsgi_flask import LintedFlaskClient, ServerDate

    app = Flask(__name__)
    app.test_client_class = LintedFlaskClient

    @app.get("/items/<iid>")
    def get_item(iid: str) -> Any:
        calls[iid] = calls.get(iid, 0) + 1
        accept = request.headers.get("accept", "-")
        body = f"item {iid} v{VERSION.get(iid, 0)} {accept}"
        return Response(body, mimetype="text/plain", headers={"Vary": "Accept"})

    @app.route("/items/<iid>", methods=["PUT", "DELETE", "PATCH"])
    @app.route("/items", methods=["POST"])
    def change(iid: str = "") -> Any:
        bumped = request.args.get("bump") or iid
        VERSION[bumped] = VERSION.get(bumped, 0) + 1
        headers = {}
        if "location" in request.args:
            headers["Location"] = request.args["location"]
        if "content_location" in request.args:
            headers["Content-Location"] = request.args["content_location"]
        status = int(request.args.get("status", "200"))
        return Response("done", status=status, mimetype="text/plain", headers=headers)

    install(app, policies=POLICIES, backend=backend)
    app.wsgi_app = ServerDate(app.wsgi_app)  # type: ignore[method-assign]
    return app.test_client()


@pytest.fixture(params=["memory", "redis"])
def sync_backend(request: pytest.FixtureRequest) -> Any:
    calls.clear()
    VERSION.clear()
    if request.param == "memory":
        yield MemoryBackend()
        return
    redis_backend = RedisBackend(
        url=request.getfixturevalue("redis_url"),
        prefix=request.getfixturevalue("redis_cleanup"),
        timeout=REDIS_TIMEOUT,
    )
    yield redis_backend
    redis_backend.close()


def test_flask_unsafe_success_drops_every_variant(sync_backend: Any) -> None:
    client = flask_client(sync_backend)
    variants: list[tuple[str, dict[str, Any]]] = [
        ("/items/1", {"headers": {"Accept": "text/plain"}}),
        ("/items/1", {"headers": {"Accept": "text/html"}}),
        ("/items/1?page=2", {"headers": {"Accept": "text/plain"}}),
        ("/items/1", {"headers": {"Accept": "text/plain"}, "base_url": "https://localhost"}),
    ]
    for url, kw in variants:
        assert "stored" in client.get(url, **kw).headers["Cache-Status"]
        assert "hit" in client.get(url, **kw).headers["Cache-Status"]
    assert client.delete("/items/1?status=404").status_code == 404
    assert all("hit" in client.get(u, **kw).headers["Cache-Status"] for u, kw in variants)
    assert client.delete("/items/1?status=204").status_code == 204
    for url, kw in variants:
        fresh = client.get(url, **kw)
        assert fresh.headers["Cache-Status"].startswith("lagless; fwd=")
        assert fresh.text.startswith("item 1 v2 ")
    assert calls["1"] == 8

    client.get("/items/2")
    client.get("/items/3")
    assert client.post("/items?status=303&location=/items/2").status_code == 303
    assert "fwd=uri-miss" in client.get("/items/2").headers["Cache-Status"]
    loc = "http://localhost/items/3"
    assert client.put(f"/items/9?content_location={loc}").status_code == 200
    assert "fwd=uri-miss" in client.get("/items/3").headers["Cache-Status"]
    foreign = "http://evil.example/items/3"
    assert client.post(f"/items?status=201&location={foreign}").status_code == 201
    assert "hit" in client.get("/items/3").headers["Cache-Status"]


# -- Django ---------------------------------------------------------------------------------------
def test_django_unsafe_success_drops_every_variant(dj: Any) -> None:  # noqa: F811
    app = dj
    app.ARTICLE_VERSION.clear()
    client = LintedClient()
    variants = [
        ("/articles/1", {"HTTP_ACCEPT": "text/plain"}),
        ("/articles/1", {"HTTP_ACCEPT": "text/html"}),
        ("/articles/1?page=2", {"HTTP_ACCEPT": "text/plain"}),
        ("/articles/1", {"HTTP_ACCEPT": "text/plain", "secure": True}),
    ]
    for url, extra in variants:
        assert "stored" in client.get(url, **extra)["Cache-Status"]
        assert "hit" in client.get(url, **extra)["Cache-Status"]
    assert client.post("/articles/1?status=409").status_code == 409
    assert all("hit" in client.get(u, **e)["Cache-Status"] for u, e in variants)
    assert client.post("/articles/1").status_code == 200
    for url, extra in variants:
        fresh = client.get(url, **extra)
        assert fresh["Cache-Status"].startswith("lagless; fwd=")
        assert fresh.content.startswith(b"article 1 v2 ")
    assert app.calls["article"] == 8

    client.get("/articles/2")
    client.get("/articles/3")
    assert client.post("/articles/1?location=/articles/2").status_code == 200
    assert "fwd=uri-miss" in client.get("/articles/2")["Cache-Status"]
    assert "hit" in client.get("/articles/3")["Cache-Status"]
    loc = "http://testserver/articles/3"
    assert client.put(f"/articles/1?content_location={loc}").status_code == 200
    assert "fwd=uri-miss" in client.get("/articles/3")["Cache-Status"]

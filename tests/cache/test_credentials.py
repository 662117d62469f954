"""Credentials in custom headers (``X-API-Key`` and the like) are treated like ``Authorization``:
never answered from or stored in the shared cache unless the route opts in by naming the header
in ``vary``, and then keyed on it. Starlette (memory and real Redis), Flask and Django."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from lagless.cache import (
    DEFAULT_CREDENTIAL_HEADERS,
    CachePolicies,
    CachePolicy,
    MemoryBackend,
    RedisBackend,
)
from lagless.cache import ResponseCacheMiddleware as ASGICache
from lagless.cache._response import bypass_reason, decorate
from tests.cache._clients import linted_asyncclient
from tests.cache.conftest import REDIS_TIMEOUT
from tests.cache.test_django import LintedClient, dj  # noqa: F401  (the Django fixture)


def test_default_credential_headers_bypass() -> None:
    policy = CachePolicy(max_age=60)
    assert policy.credential_headers == DEFAULT_CREDENTIAL_HEADERS
    assert "x-api-key" in DEFAULT_CREDENTIAL_HEADERS
    for name in ("authorization", "cookie", *DEFAULT_CREDENTIAL_HEADERS):
        assert bypass_reason("GET", {name: "secret"}, policy) == name
        assert bypass_reason("GET", {name: "  "}, policy) is None  # blank: no credentials
    assert bypass_reason("GET", {"x-request-id": "1"}, policy) is None


def test_custom_list_and_opt_in_through_vary() -> None:
    mine = CachePolicy(max_age=60, credential_headers=("X-Tenant-Token ", "x-api-key"))
    assert mine.credential_headers == ("x-tenant-token", "x-api-key")
    assert bypass_reason("GET", {"x-tenant-token": "t"}, mine) == "x-tenant-token"
    assert bypass_reason("GET", {"x-auth-token": "t"}, mine) is None  # not in this list
    opted = CachePolicy(max_age=60, vary=("x-api-key",))
    assert bypass_reason("GET", {"x-api-key": "k"}, opted) is None
    assert bypass_reason("GET", {"x-api-key": "k", "x-auth-token": "t"}, opted) == "x-auth-token"
    assert (
        bypass_reason(
            "GET", {"authorization": "b"}, CachePolicy(max_age=1, vary=("authorization",))
        )
        is None
    )
    with pytest.raises(TypeError):
        CachePolicy(credential_headers="x-api-key")  # type: ignore[arg-type]


def test_personal_responses_are_never_public() -> None:
    policy = CachePolicy(max_age=60, s_maxage=300)
    out = dict(decorate("GET", {"x-api-key": "k"}, 200, [], b"x", policy=policy))
    assert out["cache-control"] == "private, max-age=60"
    opted = CachePolicy(max_age=60, s_maxage=300, vary=("x-api-key",))
    out = dict(decorate("GET", {"x-api-key": "k"}, 200, [], b"x", policy=opted))
    assert out["cache-control"] == "public, max-age=60, s-maxage=300"
    assert out["vary"] == "x-api-key"


calls: list[str] = []


async def report(request: Request) -> Response:
    key = request.headers.get("x-api-key", "anonymous")
    calls.append(key)
    return PlainTextResponse(f"report for {key}")


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> Any:
    calls.clear()
    if request.param == "memory":
        yield MemoryBackend()
        return
    url = request.getfixturevalue("redis_url")
    redis_backend = RedisBackend(
        url=url, prefix=request.getfixturevalue("redis_cleanup"), timeout=REDIS_TIMEOUT
    )
    yield redis_backend
    await redis_backend.aclose()
    redis_backend.close()


async def test_asgi_api_keys_never_share(backend: Any) -> None:
    app = Starlette(routes=[Route("/report", report), Route("/keyed", report)])
    policies = CachePolicies(
        {
            "/report": CachePolicy(max_age=60, s_maxage=60),
            "/keyed": CachePolicy(max_age=60, vary=("x-api-key",)),
        }
    )
    async with linted_asyncclient(ASGICache(app, policies=policies, backend=backend)) as client:
        assert (await client.get("/report")).text == "report for anonymous"
        alice = await client.get("/report", headers={"X-API-Key": "alice"})
        assert alice.text == "report for alice"
        assert alice.headers["cache-status"] == "lagless; fwd=bypass; detail=x-api-key"
        assert alice.headers["cache-control"] == "private, max-age=60"
        bob = await client.get("/report", headers={"X-API-Key": "bob"})
        assert bob.text == "report for bob"
        assert (await client.get("/report")).text == "report for anonymous"  # a hit
        assert calls == ["anonymous", "alice", "bob"]

        calls.clear()
        for who in ("alice", "bob", "alice", "bob"):
            response = await client.get("/keyed", headers={"X-API-Key": who})
            assert response.text == f"report for {who}"
            assert response.headers["vary"] == "x-api-key"
        assert calls == ["alice", "bob"]  # each key its own entry, reused


def test_flask_api_keys_bypass() -> None:
    from flask import Flask, request

    from lagless.cache.flask import install
    from tests.cache.test_wsgi_flask import LintedFlaskClient, ServerDate

    app = Flask(__name__)
    app.test_client_class = LintedFlaskClient
    seen: list[str] = []

    @app.get("/report")
    def flask_report() -> Any:
        seen.append(request.headers.get("X-Auth-Token", "anonymous"))
        return f"report for {seen[-1]}", 200, {"Content-Type": "text/plain; charset=utf-8"}

    install(app, policies=CachePolicies({"/report": CachePolicy(max_age=60)}))
    app.wsgi_app = ServerDate(app.wsgi_app)  # type: ignore[method-assign]
    client = app.test_client()
    assert client.get("/report").text == "report for anonymous"
    first = client.get("/report", headers={"X-Auth-Token": "t1"})
    assert first.text == "report for t1" and "detail=x-auth-token" in first.headers["Cache-Status"]
    assert client.get("/report", headers={"X-Auth-Token": "t2"}).text == "report for t2"
    assert client.get("/report").headers["Cache-Status"].startswith("lagless; hit")
    assert seen == ["anonymous", "t1", "t2"]


def test_django_api_keys_bypass(dj: Any) -> None:  # noqa: F811
    client = LintedClient()
    anonymous = client.get("/me")
    assert anonymous.content == b"hello anonymous"
    keyed = client.get("/me", HTTP_X_API_KEY="alice")
    assert "detail=x-api-key" in keyed["Cache-Status"]
    assert keyed["Cache-Control"] == "private, max-age=60"
    assert "hit" in client.get("/me")["Cache-Status"]
    assert dj.calls["me"] == 2

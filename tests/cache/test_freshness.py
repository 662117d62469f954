"""Freshness from the response (RFC 9111 §4.2.1, §5.3): ``Expires`` in the past or invalid is
never stored, ``Expires`` gives the lifetime when there is no max-age / s-maxage, and what the
response says beats the route's default; through Starlette and Flask, memory and real Redis."""

from __future__ import annotations

import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from lagless.cache import CachePolicies, CachePolicy, MemoryBackend, RedisBackend
from lagless.cache import ResponseCacheMiddleware as ASGICache
from lagless.cache._conditional import http_date
from lagless.cache._flow import plan_store
from lagless.cache._response import freshness_lifetime, refusal_reason
from tests.cache._clients import ServerDate, linted_asyncclient
from tests.cache.conftest import REDIS_TIMEOUT, FakeClock

NOW = 1_800_000_000.0
PAST = http_date(NOW - 60)
SOON = http_date(NOW + 120)


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ({}, None),
        ({"expires": SOON}, 120.0),
        ({"expires": SOON, "date": http_date(NOW + 20)}, 100.0),  # Expires - Date
        ({"expires": PAST}, 0.0),
        ({"expires": "0"}, 0.0),  # RFC 9111 §5.3: invalid means already expired
        ({"expires": "tomorrow"}, 0.0),
        ({"expires": f"{SOON}, {SOON}"}, 0.0),  # a list is not a date
        ({"expires": PAST, "cache-control": "max-age=30"}, 30.0),  # max-age wins
        ({"expires": PAST, "cache-control": "s-maxage=40, max-age=30"}, 40.0),
        ({"expires": SOON, "cache-control": "public, max-age=0"}, 0.0),
        ({"cache-control": "max-age=ten"}, 0.0),
        ({"cache-control": 'max-age="15"'}, 15.0),
    ],
)
def test_freshness_lifetime(headers: dict[str, str], lifetime: float | None) -> None:
    assert freshness_lifetime(headers, NOW) == lifetime


def test_expired_or_invalid_expires_is_never_stored() -> None:
    assert refusal_reason(200, {"expires": PAST}, NOW) == "stale"
    assert refusal_reason(200, {"expires": "0"}, NOW) == "stale"
    assert refusal_reason(200, {"expires": http_date(NOW)}, NOW) == "stale"
    assert refusal_reason(200, {"expires": SOON}, NOW) is None
    assert refusal_reason(200, {"expires": PAST, "cache-control": "max-age=5"}, NOW) is None


def test_the_response_lifetime_sets_the_entry_ttl() -> None:
    def ttl(headers: list[tuple[str, str]], policy: CachePolicy) -> float | None:
        entry, _ = plan_store(
            "GET", 200, headers, b"x", policy=policy, max_body=100, stored_at=NOW, route=None
        )
        return None if entry is None else entry.ttl

    route_default = CachePolicy(max_age=60)
    assert ttl([], route_default) == 60.0
    assert ttl([("Expires", SOON)], route_default) == 120.0
    assert ttl([("Expires", PAST)], route_default) is None
    assert ttl([("Cache-Control", "max-age=5"), ("Expires", SOON)], route_default) == 5.0
    # An explicit server ttl is the operator's word; store=False still means never.
    assert ttl([("Expires", SOON)], CachePolicy(max_age=60, ttl=600)) == 600.0
    assert ttl([("Expires", SOON)], CachePolicy(max_age=60, store=False)) is None


calls: list[str] = []


async def page(request: Request) -> Response:
    """Answers with the Expires the test names in ``?expires=`` (``past``, ``soon``, raw)."""
    calls.append(request.url.path)
    clock: FakeClock = request.app.state.clock
    given = request.query_params["expires"]
    value = {"past": http_date(clock.now - 60), "soon": http_date(clock.now + 120)}.get(
        given, given
    )
    # The app's own Cache-Control (no max-age) replaces the policy's: Expires is the lifetime.
    return PlainTextResponse("page", headers={"Expires": value, "Cache-Control": "public"})


def test_asgi_expires_decides(clock: FakeClock) -> None:
    calls.clear()
    app = Starlette(routes=[Route("/page", page)])
    app.state.clock = clock
    policies = CachePolicies({"/page": CachePolicy(max_age=60)})
    # Not the linting client: the invalid Expires values are the point (httplint rightly flags
    # them as the app's error; the cache must treat them as "already expired").
    with TestClient(
        ServerDate(ASGICache(app, policies=policies, backend=MemoryBackend(), clock=clock))
    ) as client:
        for expires in ("past", "0", "not-a-date"):
            for _ in range(2):
                response = client.get(f"/page?expires={expires}")
                assert response.headers["cache-status"] == "lagless; fwd=uri-miss; detail=stale"
        assert len(calls) == 6

        assert "stored" in client.get("/page?expires=soon").headers["cache-status"]
        clock.advance(119)
        assert client.get("/page?expires=soon").headers["cache-status"].startswith("lagless; hit")
        clock.advance(2)  # past Expires, though the route's max-age (60) was never the limit
        assert "fwd=uri-miss" in client.get("/page?expires=soon").headers["cache-status"]
        assert len(calls) == 8


@pytest.mark.redis
async def test_redis_entry_lives_as_long_as_expires_says(
    redis_url: str, redis_cleanup: str
) -> None:
    calls.clear()
    clock = FakeClock()
    app = Starlette(routes=[Route("/page", page)])
    app.state.clock = clock
    backend = RedisBackend(url=redis_url, prefix=redis_cleanup, timeout=REDIS_TIMEOUT)
    policies = CachePolicies({"/page": CachePolicy(max_age=60)})
    cached_app = ASGICache(app, policies=policies, backend=backend, clock=clock)
    async with linted_asyncclient(cached_app) as client:
        assert "stored" in (await client.get("/page?expires=soon")).headers["cache-status"]
        assert "detail=stale" in (await client.get("/page?expires=past")).headers["cache-status"]
    raw = redis.Redis.from_url(redis_url)
    keys = list(raw.scan_iter(match=redis_cleanup + "resp:*"))
    assert len(keys) == 1  # only the fresh one
    assert 110_000 < raw.pttl(keys[0]) <= 120_000
    raw.close()
    await backend.aclose()
    backend.close()

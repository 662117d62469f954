"""Redis stopped mid-run: every request is still answered (from the origin), errors are
counted, the circuit breaker stops calls to the dead server, and the cache recovers by itself
once Redis is back. The test starts, stops and restarts its own redis-server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lagless.cache import (
    Cache,
    CachePolicies,
    CachePolicy,
    CircuitBreaker,
    RedisBackend,
    ResponseCacheMiddleware,
    backend_errors,
    cached,
)
from tests.cache._clients import linted_testclient
from tests.cache.conftest import REDIS_TIMEOUT, OwnRedis


class Mono:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_async_function_cache_survives_redis_restart(own_redis: OwnRedis) -> None:
    mono = Mono()
    breaker = CircuitBreaker(failure_threshold=3, reset_after=5, clock=mono)
    backend = RedisBackend(url=own_redis.url, prefix="o:", timeout=REDIS_TIMEOUT, breaker=breaker)
    calls = 0

    @cached(ttl=600, key="item:{i}", cache=Cache(backend=backend))
    async def item(i: int) -> int:
        nonlocal calls
        calls += 1
        return i * 10

    async def run_batch() -> None:
        for n in range(20):  # every request must get the right answer, whatever Redis does
            assert await item(n % 5) == (n % 5) * 10

    await run_batch()
    assert calls == 5  # warmed: 5 keys, then hits
    own_redis.stop()
    await run_batch()
    await run_batch()
    assert calls == 5 + 40  # served from the origin, no request lost
    assert breaker.state == "open" and breaker.opened == 1
    failures = sum(v for k, v in backend_errors.items() if k.startswith("redis:"))
    assert failures >= 40  # counted (refused calls included)

    own_redis.start()  # empty: no persistence
    await run_batch()  # breaker still open (no time passed): origin again
    assert calls == 65
    mono.t += 5  # reset_after elapsed: one trial call goes through and succeeds
    await run_batch()
    assert breaker.state == "closed"
    assert calls == 70  # refilled 5 keys...
    await run_batch()
    assert calls == 70  # ...and hits again
    await backend.aclose()


def test_sync_function_cache_survives_redis_restart(own_redis: OwnRedis) -> None:
    mono = Mono()
    breaker = CircuitBreaker(failure_threshold=2, reset_after=1, clock=mono)
    backend = RedisBackend(url=own_redis.url, prefix="s:", timeout=REDIS_TIMEOUT, breaker=breaker)
    calls = 0

    @cached(ttl=600, key="k:{i}", cache=Cache(backend=backend))
    def value(i: int) -> str:
        nonlocal calls
        calls += 1
        return f"v{i}"

    assert [value(i % 3) for i in range(9)] == [f"v{i % 3}" for i in range(9)]
    assert calls == 3
    own_redis.stop()
    assert [value(i % 3) for i in range(9)] == [f"v{i % 3}" for i in range(9)]
    assert calls == 12 and breaker.state == "open"
    own_redis.start()
    mono.t += 1
    assert [value(i % 3) for i in range(9)] == [f"v{i % 3}" for i in range(9)]
    assert calls == 15 and breaker.state == "closed"
    backend.close()


def test_response_cache_middleware_fails_open(own_redis: OwnRedis) -> None:
    mono = Mono()
    breaker = CircuitBreaker(failure_threshold=2, reset_after=1, clock=mono)
    backend = RedisBackend(url=own_redis.url, prefix="r:", timeout=REDIS_TIMEOUT, breaker=breaker)
    views = 0

    async def page(request: Request) -> JSONResponse:
        nonlocal views
        views += 1
        return JSONResponse({"id": request.path_params["pid"]})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await backend.aclose()  # the async client lives on the TestClient's loop

    app = ResponseCacheMiddleware(
        Starlette(routes=[Route("/p/{pid}", page)], lifespan=lifespan),
        policies=CachePolicies({"/p/{pid}": CachePolicy(max_age=60)}),
        backend=backend,
    )
    with linted_testclient(app) as client:
        assert client.get("/p/1").headers["cache-status"] == "lagless; fwd=uri-miss; stored"
        assert client.get("/p/1").headers["cache-status"].startswith("lagless; hit")
        own_redis.stop()
        for _ in range(10):
            response = client.get("/p/1")
            assert response.status_code == 200 and response.json() == {"id": "1"}
        assert views == 11
        own_redis.start()
        mono.t += 1
        assert "stored" in client.get("/p/1").headers["cache-status"]
        assert client.get("/p/1").headers["cache-status"].startswith("lagless; hit")
        assert views == 12
    backend.close()


@pytest.fixture(autouse=True)
def _quiet_breaker_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="lagless.cache")


async def test_a_hung_redis_times_out_and_fails_open() -> None:
    """A server that accepts connections and never answers: every call gives up after the
    timeout (sync: socket timeout; async: one asyncio.timeout per call), the request is served
    from the origin, and the breaker then stops trying."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # completes TCP handshakes from the backlog, never replies
    port = listener.getsockname()[1]
    mono = Mono()
    breaker = CircuitBreaker(failure_threshold=2, reset_after=60, clock=mono)
    backend = RedisBackend(
        url=f"redis://127.0.0.1:{port}/0", prefix="h:", timeout=0.1, breaker=breaker
    )
    calls = 0

    @cached(ttl=60, key="k", cache=Cache(backend=backend), lock=False)
    async def value() -> int:
        nonlocal calls
        calls += 1
        return 7

    try:
        assert [await value() for _ in range(4)] == [7, 7, 7, 7]
        assert calls == 4
        assert breaker.state == "open"
        assert backend_errors["redis:get"] == 4 and backend_errors["redis:set"] >= 1
    finally:
        await backend.aclose()
        sync_backend = RedisBackend(url=f"redis://127.0.0.1:{port}/0", prefix="h:", timeout=0.1)
        assert Cache(backend=sync_backend).get("k", "fallback") == "fallback"
        sync_backend.close()
        listener.close()

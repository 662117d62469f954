"""The Redis backend against the real server: TTL, tags, serialization, one-command hits,
stampede protection within and across processes, and two processes sharing entries."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

from lagless.cache import (
    Cache,
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    RedisBackend,
    cached,
)
from tests.cache.conftest import REDIS_TIMEOUT

pytestmark = pytest.mark.redis


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def backend(redis_url: str, redis_cleanup: str) -> AsyncIterator[RedisBackend]:
    b = RedisBackend(url=redis_url, prefix=redis_cleanup, timeout=REDIS_TIMEOUT)
    yield b
    await b.aclose()
    b.close()


async def test_ttl_is_set_and_entries_expire(
    backend: RedisBackend, raw: redis.Redis, redis_cleanup: str
) -> None:
    cache = Cache(backend=backend)
    await cache.aset("k", {"a": 1}, ttl=30, stale_ttl=10)
    pttl = raw.pttl(redis_cleanup + "k")
    assert 30_000 < pttl <= 40_000  # fresh time plus the stale window
    assert await cache.aget("k") == {"a": 1}
    backend.set("short", b"x", ttl=0.05)
    for _ in range(200):
        if backend.get("short") is None:
            break
        await asyncio.sleep(0.01)
    assert backend.get("short") is None


async def test_tags_across_sync_and_async(
    backend: RedisBackend, raw: redis.Redis, redis_cleanup: str
) -> None:
    await backend.aset("u1", b"1", ttl=60, tags=["users", "user:1"])
    backend.set("u2", b"2", ttl=120, tags=["users"])
    backend.set("p", b"3", ttl=60, tags=["products"])
    tag_ttl = raw.pttl(redis_cleanup + "tag:users")
    assert tag_ttl > 60_000  # extended to the longest member's TTL
    assert sorted(await backend.ainvalidate_tags(["user:1"])) == ["u1"]
    assert backend.get("u1") is None and backend.get("u2") == b"2"
    assert backend.invalidate_tags(["users"]) == ["u2"]
    assert backend.get("u2") is None and await backend.aget("p") == b"3"
    assert not raw.exists(redis_cleanup + "tag:users")


@pytest.mark.parametrize(
    "serializer",
    [MsgpackSerializer(), JsonSerializer(), PickleSerializer(secret="k" * 32)],
    ids=["msgpack", "json", "pickle"],
)
async def test_serialization_round_trips(backend: RedisBackend, serializer: Any) -> None:
    cache = Cache(backend=backend, serializer=serializer)
    value = {"id": 3, "name": "Ünïcode", "items": [1, 2.5, None, True], "nested": {"k": "v"}}
    assert await cache.aset("v", value, ttl=60)
    assert await cache.aget("v") == value
    assert cache.get("v") == value


async def test_bytes_written_by_another_serializer_are_a_miss(backend: RedisBackend) -> None:
    await Cache(backend=backend, serializer=JsonSerializer()).aset("x", [1], ttl=60)
    assert await Cache(backend=backend, serializer=MsgpackSerializer()).aget("x", "miss") == "miss"


async def test_tampered_pickle_is_refused(
    backend: RedisBackend, raw: redis.Redis, redis_cleanup: str
) -> None:
    cache = Cache(backend=backend, serializer=PickleSerializer(secret="k" * 32))
    await cache.aset("p", {"safe": True}, ttl=60)
    data = raw.get(redis_cleanup + "p")
    assert isinstance(data, bytes)
    raw.set(redis_cleanup + "p", data[:-1] + bytes([data[-1] ^ 1]))
    assert await cache.aget("p", "refused") == "refused"


class CountingAsync(redis.asyncio.Redis):
    commands: list[str]

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]))
        return await super().execute_command(*args, **options)


async def test_a_hit_is_one_get(redis_url: str, redis_cleanup: str) -> None:
    client = CountingAsync.from_url(redis_url)
    client.commands = []
    backend = RedisBackend(async_client=client, prefix=redis_cleanup, timeout=REDIS_TIMEOUT)
    cache = Cache(backend=backend)

    @cached(ttl=60, key="one", cache=cache)
    async def f() -> str:
        return "value"

    await f()
    client.commands.clear()
    assert await f() == "value"
    assert client.commands == ["GET"]
    await client.aclose()


async def test_200_concurrent_misses_one_origin_call(backend: RedisBackend) -> None:
    calls = 0

    @cached(ttl=60, key="hot", cache=Cache(backend=backend))
    async def hot() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 42

    assert await asyncio.gather(*(hot() for _ in range(200))) == [42] * 200
    assert calls == 1


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import redis
    from lagless.cache import Cache, RedisBackend, cached

    url, prefix, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    counter = redis.Redis.from_url(url)
    cache = Cache(backend=RedisBackend(url=url, prefix=prefix, timeout=10.0))

    @cached(ttl=60, key="shared:{n}", cache=cache)
    async def compute(n):
        counter.incr(prefix + "origin-calls")
        await asyncio.sleep(0.3)
        return {"n": n, "by": mode}

    async def main():
        if mode == "read":
            print(await compute(1))
        else:
            results = await asyncio.gather(*(compute(2) for _ in range(50)))
            assert all(r["n"] == 2 for r in results)
            print("ok")

    asyncio.run(main())
    """
)


def _child(redis_url: str, prefix: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, redis_url, prefix, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_two_processes_share_entries(
    redis_url: str, redis_cleanup: str, raw: redis.Redis
) -> None:
    backend = RedisBackend(url=redis_url, prefix=redis_cleanup, timeout=REDIS_TIMEOUT)
    cache = Cache(backend=backend)

    @cached(ttl=60, key="shared:{n}", cache=cache)
    async def compute(n: int) -> dict[str, Any]:
        return {"n": n, "by": "parent"}

    await compute(1)
    await backend.aclose()
    child = _child(redis_url, redis_cleanup, "read")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "'by': 'parent'" in out  # the child got the parent's entry
    assert raw.get(redis_cleanup + "origin-calls") is None  # and never ran its origin


def test_stampede_across_processes_one_origin_call(
    redis_url: str, redis_cleanup: str, raw: redis.Redis
) -> None:
    children = [_child(redis_url, redis_cleanup, "stampede") for _ in range(4)]
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0 and out.strip() == "ok", err
    # 4 processes x 50 concurrent misses: one origin call (single-flight + Redis lock).
    assert raw.get(redis_cleanup + "origin-calls") == b"1"


def test_sync_api(redis_url: str, redis_cleanup: str) -> None:
    backend = RedisBackend(url=redis_url, prefix=redis_cleanup, timeout=REDIS_TIMEOUT)
    cache = Cache(backend=backend)
    calls = 0

    @cached(ttl=60, key="s:{x}", tags=["s"], cache=cache)
    def f(x: int) -> list[int]:
        nonlocal calls
        calls += 1
        return [x, x]

    assert f(1) == [1, 1] and f(1) == [1, 1] and calls == 1
    assert f.invalidate(1)
    assert f(1) == [1, 1] and calls == 2
    assert cache.invalidate_tags("s") == ["s:1"]
    token = backend.lock("L", ttl=5)
    assert token is not None and backend.lock("L", ttl=5) is None
    backend.unlock("L", token)
    assert backend.lock("L", ttl=5) is not None
    backend.clear()
    assert backend.get("s:1") is None
    backend.close()


async def test_concurrent_reads_of_one_key_share_a_get(redis_url: str, redis_cleanup: str) -> None:
    client = CountingAsync.from_url(redis_url)
    client.commands = []
    backend = RedisBackend(async_client=client, prefix=redis_cleanup, timeout=REDIS_TIMEOUT)
    await backend.aset("hot", b"v", ttl=60)
    client.commands.clear()
    values = await asyncio.gather(*(backend.aget("hot") for _ in range(300)))
    assert values == [b"v"] * 300
    assert client.commands == ["GET"]  # one connection, one round trip for the burst

    await client.aclose()


class Gated(CountingAsync):
    gate: asyncio.Event

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        await self.gate.wait()
        return await super().execute_command(*args, **options)


async def test_a_cancelled_reader_does_not_fail_the_others(
    redis_url: str, redis_cleanup: str
) -> None:
    client = Gated.from_url(redis_url)
    client.commands = []
    client.gate = asyncio.Event()
    client.gate.set()
    backend = RedisBackend(async_client=client, prefix=redis_cleanup, timeout=REDIS_TIMEOUT)
    await backend.aset("hot", b"v", ttl=60)
    client.gate.clear()
    first = asyncio.ensure_future(backend.aget("hot"))
    await asyncio.sleep(0)  # first is now waiting inside its GET
    others = [asyncio.ensure_future(backend.aget("hot")) for _ in range(5)]
    await asyncio.sleep(0)  # the others joined it
    first.cancel()  # its client went away
    await asyncio.sleep(0)
    client.gate.set()
    assert await asyncio.gather(*others) == [b"v"] * 5
    assert first.cancelled()
    await client.aclose()


def test_a_client_from_url_follows_the_event_loop(redis_url: str, redis_cleanup: str) -> None:
    """Starlette's TestClient (outside a ``with`` block) runs each request on a new event loop;
    a backend built from ``url=`` must keep working there instead of failing every call with
    "Event loop is closed" (which fails open: the cache would silently never hit)."""
    backend = RedisBackend(url=redis_url, prefix=redis_cleanup, timeout=REDIS_TIMEOUT)
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(backend.aset("k", b"v", ttl=30))

        async def read() -> bytes | None:
            try:
                return await backend.aget("k")
            finally:
                await backend.aclose()  # this loop's client only

        assert asyncio.run(read()) == b"v"
        assert backend.breaker.allow()
        # The first loop still has its own client, and can read with it.
        assert first.run_until_complete(backend.aget("k")) == b"v"
    finally:
        first.run_until_complete(backend.aclose())
        first.close()
        backend.close()

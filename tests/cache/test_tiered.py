"""Memory in front of Redis: coherent across instances and processes through pub/sub."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator

import pytest

from lagless.cache import Cache, RedisBackend, TieredBackend, backend_errors
from tests.cache.conftest import REDIS_TIMEOUT, OwnRedis

pytestmark = pytest.mark.redis


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


@pytest.fixture
def pair(redis_url: str, redis_cleanup: str) -> Iterator[tuple[TieredBackend, TieredBackend]]:
    a = TieredBackend(
        remote=RedisBackend(url=redis_url, prefix=redis_cleanup, timeout=REDIS_TIMEOUT)
    )
    b = TieredBackend(
        remote=RedisBackend(url=redis_url, prefix=redis_cleanup, timeout=REDIS_TIMEOUT)
    )
    assert a.wait_ready() and b.wait_ready()
    yield a, b
    a.close()
    b.close()
    a.remote.close()
    b.remote.close()


def test_writes_invalidate_the_other_tier(pair: tuple[TieredBackend, TieredBackend]) -> None:
    a, b = pair
    ca, cb = Cache(backend=a), Cache(backend=b)
    seen = b._generation
    ca.set("k", "v1", ttl=60)
    # b learns of the write (and would drop a copy it held) before it reads
    assert eventually(lambda: b._generation > seen)
    assert cb.get("k") == "v1"
    assert "k" in b.local._data  # b now answers from memory
    ca.set("k", "v2", ttl=60)
    assert eventually(lambda: "k" not in b.local._data)
    assert cb.get("k") == "v2"
    ca.delete("k")
    assert eventually(lambda: "k" not in b.local._data)
    assert cb.get("k") is None

    seen = b._generation
    ca.set("t1", 1, ttl=60, tags=["grp"])
    assert eventually(lambda: b._generation > seen)
    assert cb.get("t1") == 1 and "t1" in b.local._data
    assert ca.invalidate_tags("grp") == ["t1"]
    assert eventually(lambda: "t1" not in b.local._data)
    assert cb.get("t1") is None


async def test_async_writes_invalidate(pair: tuple[TieredBackend, TieredBackend]) -> None:
    a, b = pair
    ca, cb = Cache(backend=a), Cache(backend=b)
    seen = b._generation
    await ca.aset("ak", [1], ttl=60)
    assert eventually(lambda: b._generation > seen)
    assert await cb.aget("ak") == [1]
    assert "ak" in b.local._data
    await ca.aset("ak", [2], ttl=60)
    assert eventually(lambda: "ak" not in b.local._data)
    assert await cb.aget("ak") == [2]
    await a.remote.aclose()
    await b.remote.aclose()


_CHILD = textwrap.dedent(
    """
    import sys
    from lagless.cache import Cache, RedisBackend, TieredBackend
    backend = TieredBackend(remote=RedisBackend(url=sys.argv[1], prefix=sys.argv[2], timeout=10.0))
    backend.wait_ready()
    Cache(backend=backend).set("shared", "from-child", ttl=60)
    backend.close()
    """
)


def test_coherent_across_processes(pair: tuple[TieredBackend, TieredBackend]) -> None:
    a, _ = pair
    cache = Cache(backend=a)
    cache.set("shared", "from-parent", ttl=60)
    assert cache.get("shared") == "from-parent" and "shared" in a.local._data
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, a.remote.url or "", a.remote.prefix],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert eventually(lambda: cache.get("shared") == "from-child")


def test_memory_tier_goes_dark_without_subscription(own_redis: OwnRedis) -> None:
    remote = RedisBackend(url=own_redis.url, prefix="t:", timeout=REDIS_TIMEOUT)
    tiered = TieredBackend(remote=remote)
    try:
        assert tiered.wait_ready()
        cache = Cache(backend=tiered)
        cache.set("k", "v", ttl=60)
        assert cache.get("k") == "v"
        own_redis.stop()
        # Invalidations can no longer arrive: the memory tier is emptied and bypassed.
        assert eventually(lambda: not tiered._live and not tiered.local._data)
        assert cache.get("k") is None  # fail open: a miss, not an error
        assert backend_errors.get("tiered:subscribe", 0) >= 1
        own_redis.start()
        assert tiered.wait_ready(timeout=15)
        remote.breaker.success()
        cache.set("k", "again", ttl=60)
        assert cache.get("k") == "again"
    finally:
        tiered.close()
        remote.close()

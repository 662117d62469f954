from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from lagless._trace import Trace, _current_trace
from lagless.cache import (
    Cache,
    MemoryBackend,
    UnstableKeyError,
    backend_errors,
    bypass,
    cached,
    default_cache,
    invalidate_tags,
    set_default_cache,
)
from tests.cache.conftest import FakeClock


@pytest.fixture
def cache(clock: FakeClock) -> Cache:
    return Cache(backend=MemoryBackend(clock=lambda: clock.now), clock=clock)


@pytest.fixture
def trace() -> Iterator[Trace]:
    t = Trace("GET", "/x")
    token = _current_trace.set(t)
    yield t
    _current_trace.reset(token)


async def test_200_concurrent_misses_make_one_origin_call(cache: Cache) -> None:
    calls = 0

    @cached(ttl=30, key="item:{item_id}", cache=cache)
    async def load(item_id: int) -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return {"id": item_id}

    results = await asyncio.gather(*(load(7) for _ in range(200)))
    assert calls == 1
    assert all(r == {"id": 7} for r in results)
    assert await load(7) == {"id": 7} and calls == 1


def test_sync_single_flight_across_threads(cache: Cache) -> None:
    calls = 0
    gate = threading.Event()

    @cached(ttl=30, cache=cache)
    def load(x: int) -> int:
        nonlocal calls
        calls += 1
        gate.wait(5)
        return x * 2

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(load(21))) for _ in range(50)]
    for t in threads:
        t.start()
    while not load._inflight:  # wait until the leader is inside the origin call
        threading.Event().wait(0.001)
    gate.set()
    for t in threads:
        t.join()
    assert calls == 1 and results == [42] * 50


async def test_stale_while_revalidate_serves_stale_and_refreshes_once(
    cache: Cache, clock: FakeClock
) -> None:
    version = 0
    release = asyncio.Event()

    @cached(ttl=10, key="v", stale_while_revalidate=60, cache=cache)
    async def current() -> int:
        nonlocal version
        version += 1
        if version > 1:
            await release.wait()
        return version

    assert await current() == 1
    clock.advance(11)  # stale, within the SWR window
    served = await asyncio.gather(*(current() for _ in range(50)))
    assert served == [1] * 50  # all answered at once with the stale value
    assert version == 2  # exactly one background refresh started
    release.set()
    await current.wait_refreshes()
    assert await current() == 2 and version == 2
    clock.advance(11 + 60)  # past the stale window: a normal miss
    release.set()
    assert await current() == 3


def test_sync_stale_while_revalidate(cache: Cache, clock: FakeClock) -> None:
    counter = {"n": 0}
    release = threading.Event()

    @cached(ttl=10, key="s", stale_while_revalidate=30, cache=cache)
    def value() -> int:
        counter["n"] += 1
        if counter["n"] > 1:
            release.wait(5)
        return counter["n"]

    assert value() == 1
    clock.advance(15)
    assert [value() for _ in range(20)] == [1] * 20  # stale served while the refresh waits
    for _ in range(500):
        if counter["n"] == 2:
            break
        threading.Event().wait(0.01)
    assert counter["n"] == 2  # one refresh, on a worker thread
    assert [value() for _ in range(5)] == [1] * 5 and counter["n"] == 2
    release.set()
    for _ in range(500):  # the worker stores right after the origin returns
        if value() == 2:
            break
        threading.Event().wait(0.01)
    assert value() == 2 and counter["n"] == 2


async def test_stale_if_error(cache: Cache, clock: FakeClock) -> None:
    fail = False

    @cached(ttl=10, key="sie", stale_if_error=100, cache=cache)
    async def fetch() -> str:
        if fail:
            raise ConnectionError("upstream down")
        return "good"

    assert await fetch() == "good"
    fail = True
    clock.advance(50)
    assert await fetch() == "good"  # origin failed, stale served
    clock.advance(100)
    with pytest.raises(ConnectionError):
        await fetch()  # beyond the stale-if-error window the error surfaces


async def test_tags_key_invalidation_refresh_and_bypass(cache: Cache) -> None:
    calls: list[int] = []

    @cached(ttl=60, key="user:{uid}", tags=["users", "user:{uid}"], cache=cache)
    async def user(uid: int, verbose: bool = False) -> dict[str, Any]:
        calls.append(uid)
        return {"uid": uid, "n": len(calls)}

    assert (await user(1))["n"] == 1
    assert (await user(2))["n"] == 2
    assert user.key_for(1) == "user:1"
    assert (await user(1))["n"] == 1  # hit
    assert await cache.ainvalidate_tags("user:1") == ["user:1"]
    assert (await user(1))["n"] == 3
    assert sorted(cache.invalidate_tags("users")) == ["user:1", "user:2"]
    assert (await user(2))["n"] == 4
    assert await user.ainvalidate(2)
    assert (await user(2))["n"] == 5
    assert (await user.refresh(2))["n"] == 6  # bypasses the entry, stores the new value
    assert (await user(2))["n"] == 6
    with bypass():
        assert (await user(2))["n"] == 7
    assert (await user(2))["n"] == 6  # bypass neither read nor wrote


def test_default_key_and_unstable_arguments() -> None:
    set_default_cache(None)
    try:
        calls = 0

        @cached(ttl=60)
        def square(x: int) -> int:
            nonlocal calls
            calls += 1
            return x * x

        assert square(3) == 9 and square(3) == 9 and calls == 1
        assert square.key_for(3).endswith("square:(3,)")
        assert default_cache().get(square.key_for(3)) == 9
        assert invalidate_tags("nothing") == []

        @cached(ttl=60)
        def method_like(obj: object) -> int:
            return 1

        with pytest.raises(UnstableKeyError, match="key="):
            method_like(object())
        with pytest.raises(ValueError, match="does not take"):
            cached(ttl=1, key="{missing}")(lambda x: x)
        with pytest.raises(ValueError, match="positive"):
            cached(ttl=0)(lambda: 1)
    finally:
        set_default_cache(None)


async def test_spans_record_hit_and_key_shape_not_values(cache: Cache, trace: Trace) -> None:
    @cached(ttl=60, key="session:{token}", cache=cache)
    async def session(token: str) -> str:
        return "data"

    await session("SECRET-TOKEN")
    await session("SECRET-TOKEN")
    spans = [s for s in trace.spans if s.kind == "cache"]
    assert [(s.name, s.get("hit")) for s in spans] == [("GET", False), ("SET", None), ("GET", True)]
    assert all(s.get("key") == "session:{token}" for s in spans)
    assert all(s.get("backend") == "memory" for s in spans)
    assert "SECRET" not in repr([s.attrs for s in spans])


class BrokenBackend(MemoryBackend):
    name = "broken"

    def get(self, key: str) -> bytes | None:
        raise ConnectionError("down")

    def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        raise ConnectionError("down")

    async def aget(self, key: str) -> bytes | None:
        raise ConnectionError("down")

    async def aset(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        raise TimeoutError("slow")


async def test_backend_failure_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    cache = Cache(backend=BrokenBackend())
    calls = 0

    @cached(ttl=60, cache=cache, lock=False)
    async def f(x: int) -> int:
        nonlocal calls
        calls += 1
        return x

    @cached(ttl=60, cache=cache, lock=False)
    def g(x: int) -> int:
        return x + 1

    assert [await f(i % 3) for i in range(30)] == [i % 3 for i in range(30)]
    assert [g(1) for _ in range(5)] == [2] * 5
    assert calls == 30
    assert backend_errors["broken:get"] == 35 and backend_errors["broken:set"] == 35
    # logged once per interval, not once per failure
    assert len([r for r in caplog.records if "broken" in r.getMessage()]) == 1


async def test_unserializable_value_is_served_not_cached(cache: Cache) -> None:
    calls = 0

    @cached(ttl=60, cache=cache)
    async def f() -> object:
        nonlocal calls
        calls += 1
        return {1, 2}  # a set: msgpack cannot store it

    assert await f() == {1, 2} and await f() == {1, 2}
    assert calls == 2
    assert backend_errors["memory:encode"] == 2


def test_async_wrapper_stays_a_coroutine_function(cache: Cache) -> None:
    import inspect

    @cached(ttl=1, cache=cache)
    async def f() -> int:
        return 1

    assert inspect.iscoroutinefunction(f)
    assert f.__name__ == "f"


async def test_a_cancelled_leader_does_not_fail_the_waiters(cache: Cache) -> None:
    gate = asyncio.Event()
    calls = 0

    @cached(ttl=30, key="k", cache=cache)
    async def slow() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "value"

    leader = asyncio.ensure_future(slow())
    await asyncio.sleep(0)  # the leader is inside the origin call
    waiters = [asyncio.ensure_future(slow()) for _ in range(10)]
    await asyncio.sleep(0)
    leader.cancel()  # its client disconnected
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == ["value"] * 10
    assert leader.cancelled()
    assert calls == 2  # one waiter took over as leader; none failed


async def test_corrupt_entries_are_misses(cache: Cache) -> None:
    @cached(ttl=30, key="c", cache=cache)
    async def value() -> int:
        return 5

    assert await value() == 5
    data = cache.backend.get("c")
    assert data is not None
    cache.backend.set("c", data[:18] + b"\xc1", ttl=30)  # same header, invalid msgpack payload
    assert await value() == 5  # recomputed, not an exception
    assert backend_errors["memory:decode"] == 1

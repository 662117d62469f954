"""redis-py capture against the real Redis server: sync and asyncio clients, pipelines,
hits and misses, errors, and exact uninstall."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("redis")

import redis
import redis.asyncio
import redis.asyncio.client
import redis.client

import lagless
import lagless.integrations.redis as redis_integration
from lagless._guard import internal_errors
from lagless._spans import params_fingerprint
from lagless._trace import Trace, _current_trace
from lagless.integrations import get_integration

pytestmark = pytest.mark.redis

PATCHED = [
    (redis.client.Redis, "execute_command"),
    (redis.client.Pipeline, "execute"),
    (redis.client.Pipeline, "immediate_execute_command"),
    (redis.asyncio.client.Redis, "execute_command"),
    (redis.asyncio.client.Pipeline, "execute"),
    (redis.asyncio.client.Pipeline, "immediate_execute_command"),
]


@pytest.fixture
def installed() -> Iterator[None]:
    integ = get_integration("redis")
    integ.install()
    yield
    integ.uninstall()


@pytest.fixture
def client(redis_url: str, installed: None) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


@pytest.fixture
async def aclient(redis_url: str, installed: None) -> AsyncIterator[redis.asyncio.Redis]:
    r = redis.asyncio.Redis.from_url(redis_url)
    yield r
    await r.aclose()


def cache_spans(trace: Trace) -> list[Any]:
    return [s for s in trace.spans if s.kind == "cache"]


def test_install_is_idempotent_and_uninstall_restores_exactly() -> None:
    before = [(owner, name, owner.__dict__.get(name)) for owner, name in PATCHED]
    integ = get_integration("redis")
    integ.install()
    patched = [owner.__dict__.get(name) for owner, name, _ in before]
    assert all(p is not orig for p, (_, _, orig) in zip(patched, before, strict=True))
    integ.install()  # idempotent: not wrapped twice
    assert [owner.__dict__.get(name) for owner, name, _ in before] == patched
    assert redis.client.Redis.execute_command.__wrapped__ is before[0][2]
    integ.uninstall()
    for owner, name, orig in before:
        assert owner.__dict__.get(name) is orig
    # Pipeline's own execute_command (it queues) was never touched.
    assert "execute_command" in redis.client.Pipeline.__dict__
    integ.uninstall()  # idempotent too
    assert integ.installed is False


def test_get_set_hit_miss_key_folding(client: redis.Redis, key_prefix: str, trace: Trace) -> None:
    key = f"{key_prefix}user:42:profile"
    assert client.get(key) is None
    assert client.set(key, b"x" * 50) is True
    assert client.get(key) == b"x" * 50
    other = f"{key_prefix}user:43:profile"
    assert client.get(other) is None

    miss, write, hit, other_miss = cache_spans(trace)
    assert [s.name for s in (miss, write, hit, other_miss)] == ["GET", "SET", "GET", "GET"]
    folded = "lagless-test:clients:{}:user:{}:profile"
    for span in (miss, write, hit, other_miss):
        assert span.get("driver") == "redis"
        assert span.get("key") == folded  # the uuid and the id never stored raw
        assert span.get("error") is None
        assert span.get("on_loop") is None
        assert span.duration_ns >= 0
    assert miss.get("hit") is False
    assert hit.get("hit") is True
    assert hit.get("bytes") == 50
    assert write.get("bytes") == 50
    assert write.get("hit") is None  # writes are not reads
    # The same key hashes the same; another key with the same shape hashes differently.
    assert miss.get("key_hash") == hit.get("key_hash") == params_fingerprint(key)
    assert other_miss.get("key_hash") != hit.get("key_hash")


def test_multi_key_and_collection_reads(client: redis.Redis, key_prefix: str, trace: Trace) -> None:
    a, b, c, h = (f"{key_prefix}{n}" for n in ("a", "b", "c", "h"))
    client.mset({a: "1", b: "22"})
    assert client.mget([a, b, c]) == [b"1", b"22", None]
    assert client.exists(a, b, c) == 2
    assert client.hgetall(h) == {}
    client.hset(h, mapping={"f": "v"})
    assert client.hgetall(h) == {b"f": b"v"}
    assert client.hget(h, "f") == b"v"
    assert client.hget(h, "missing") is None

    by_name: dict[str, list[Any]] = {}
    for span in cache_spans(trace):
        by_name.setdefault(span.name, []).append(span)
    (mget,) = by_name["MGET"]
    assert (mget.get("hits"), mget.get("misses"), mget.get("hit")) == (2, 1, False)
    assert mget.get("bytes") == 3
    assert mget.get("key") == "lagless-test:clients:{}:a"
    (exists,) = by_name["EXISTS"]
    assert (exists.get("hits"), exists.get("misses")) == (2, 1)
    empty, full = by_name["HGETALL"]
    assert empty.get("hit") is False
    assert full.get("hit") is True
    found, missing = by_name["HGET"]
    assert found.get("hit") is True
    assert missing.get("hit") is False


def test_error_is_recorded_and_raised_unchanged(
    client: redis.Redis, key_prefix: str, trace: Trace
) -> None:
    key = f"{key_prefix}string"
    client.set(key, "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.lpush(key, "x")
    span = cache_spans(trace)[-1]
    assert span.name == "LPUSH"
    assert span.get("error").startswith("ResponseError: WRONGTYPE")
    assert span.get("hit") is None


def test_keyless_and_script_commands(client: redis.Redis, key_prefix: str, trace: Trace) -> None:
    assert client.ping() is True
    key = f"{key_prefix}scripted"
    assert client.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, key, "v") == b"OK"
    ping, script = cache_spans(trace)
    assert ping.name == "PING"
    assert ping.get("key") is None
    assert script.name == "EVAL"
    assert script.get("key") == "lagless-test:clients:{}:scripted"


def test_pipeline_and_transaction(client: redis.Redis, key_prefix: str, trace: Trace) -> None:
    k1, k2 = f"{key_prefix}p1", f"{key_prefix}p2"
    with client.pipeline(transaction=False) as pipe:
        pipe.set(k1, "abc").get(k1).get(k2)
        assert pipe.execute() == [True, b"abc", None]
    with client.pipeline() as pipe:
        pipe.incr(k2).incr(k2)
        assert pipe.execute() == [1, 2]

    plain, multi = cache_spans(trace)  # one span per round trip, not per queued command
    assert plain.name == multi.name == "PIPELINE"
    assert plain.get("commands") == 3
    assert plain.get("ops") == "SET,GET"
    assert (plain.get("hits"), plain.get("misses"), plain.get("hit")) == (1, 1, False)
    assert plain.get("bytes") == 6  # 3 written + 3 read
    assert plain.get("transaction") is None
    assert multi.get("commands") == 2
    assert multi.get("transaction") is True
    assert multi.get("ops") == "INCRBY"


def test_pipeline_error_recorded_and_raised(
    client: redis.Redis, key_prefix: str, trace: Trace
) -> None:
    key = f"{key_prefix}s"
    client.set(key, "v")
    with client.pipeline(transaction=False) as pipe:
        pipe.lpush(key, "x")
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            pipe.execute()
    span = cache_spans(trace)[-1]
    assert span.name == "PIPELINE"
    assert "WRONGTYPE" in span.get("error")


def test_watch_commands_are_recorded(client: redis.Redis, key_prefix: str, trace: Trace) -> None:
    key = f"{key_prefix}watched"

    def bump(pipe: redis.client.Pipeline) -> None:
        current = int(pipe.get(key) or 0)
        pipe.multi()
        pipe.set(key, current + 1)

    assert client.transaction(bump, key) == [True]
    names = [s.name for s in cache_spans(trace)]
    assert names == ["WATCH", "GET", "PIPELINE"]


def test_record_params_keeps_raw_key(client: redis.Redis, key_prefix: str, trace: Trace) -> None:
    lagless.configure(record_params=True)
    key = f"{key_prefix}user:42"
    client.get(key)
    assert cache_spans(trace)[0].get("key") == key


def test_nothing_recorded_without_a_trace(
    client: redis.Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(redis_integration, "_record_command", lambda *a: calls.append(a))
    monkeypatch.setattr(redis_integration, "_record_pipeline", lambda *a: calls.append(a))
    key = f"{key_prefix}k"
    assert client.set(key, "v") is True
    assert client.get(key) == b"v"
    with client.pipeline() as pipe:
        assert pipe.get(key).execute() == [b"v"]
    assert calls == []


def test_internal_error_never_reaches_the_caller(
    client: redis.Redis, key_prefix: str, trace: Trace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("bug in lagless")

    monkeypatch.setattr(redis_integration, "fold", broken)
    key = f"{key_prefix}k"
    client.set(key, "v")
    assert client.get(key) == b"v"
    # Both calls returned their results; their spans were dropped and the bug was counted.
    assert internal_errors.get("redis:command") == 2
    assert cache_spans(trace) == []


def test_sync_call_from_a_thread_is_not_on_loop(
    client: redis.Redis, key_prefix: str, trace: Trace
) -> None:
    thread = threading.Thread(target=client.get, args=(f"{key_prefix}t",))
    thread.start()  # threads do not inherit the context: nothing is recorded there
    thread.join()
    client.get(f"{key_prefix}t")
    (span,) = cache_spans(trace)
    assert span.get("on_loop") is None


# -- asyncio ---------------------------------------------------------------------------------


async def test_async_commands_and_errors(
    aclient: redis.asyncio.Redis, key_prefix: str, trace: Trace
) -> None:
    key = f"{key_prefix}order:7"
    assert await aclient.get(key) is None
    await aclient.set(key, "hello")
    assert await aclient.get(key) == b"hello"
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        await aclient.hget(key, "f")
    miss, write, hit, failed = cache_spans(trace)
    assert [s.name for s in (miss, write, hit, failed)] == ["GET", "SET", "GET", "HGET"]
    assert miss.get("hit") is False
    assert hit.get("hit") is True
    assert hit.get("bytes") == 5
    assert hit.get("key") == "lagless-test:clients:{}:order:{}"
    assert failed.get("error").startswith("ResponseError")
    assert all(s.get("on_loop") is None for s in cache_spans(trace))  # awaited, not blocking


async def test_async_pipeline(aclient: redis.asyncio.Redis, key_prefix: str, trace: Trace) -> None:
    key = f"{key_prefix}ap"
    async with aclient.pipeline(transaction=True) as pipe:
        pipe.set(key, "1").get(key)
        assert await pipe.execute() == [True, b"1"]
    (span,) = cache_spans(trace)
    assert span.name == "PIPELINE"
    assert span.get("commands") == 2
    assert span.get("transaction") is True
    assert span.get("hit") is True


async def test_gather_lands_in_one_trace_and_traces_never_mix(
    redis_url: str, installed: None, key_prefix: str
) -> None:
    async def handler(name: str, n: int) -> Trace:
        trace = Trace("GET", f"/{name}")
        _current_trace.set(trace)  # this task's own context, as the middleware does
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            await asyncio.gather(*(client.get(f"{key_prefix}{name}:{i}") for i in range(n)))
        finally:
            await client.aclose()
        return trace

    first, second = await asyncio.gather(
        asyncio.create_task(handler("first", 5)), asyncio.create_task(handler("second", 3))
    )
    assert len(cache_spans(first)) == 5
    assert len(cache_spans(second)) == 3
    assert {s.get("key") for s in first.spans} == {"lagless-test:clients:{}:first:{}"}
    assert {s.get("key") for s in second.spans} == {"lagless-test:clients:{}:second:{}"}
    assert _current_trace.get() is None


async def test_sync_client_on_event_loop_is_flagged(
    client: redis.Redis, key_prefix: str, trace: Trace
) -> None:
    client.get(f"{key_prefix}blocking")
    (span,) = cache_spans(trace)
    assert span.get("on_loop") is True

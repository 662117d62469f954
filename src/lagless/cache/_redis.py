"""Redis (and Valkey, and Redis Cluster) behind the cache protocol, with sync and async clients.

Only single-key commands are used (GET, SET, DEL, SADD, SMEMBERS, EXPIRE, one single-key Lua
script), so every command routes to one slot and the backend works unchanged on Redis Cluster.
A hit is exactly one GET: freshness travels inside the stored value (see ``_backend.pack``).

Every call goes through a :class:`~lagless.cache._breaker.CircuitBreaker`; the clients are built
with short socket timeouts and a single retry, so a dead Redis costs a request at most one quick
failure and then nothing at all until the breaker lets a trial call through.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from lagless.cache._breaker import BackendUnavailable, CircuitBreaker

# Compare-and-delete, so a lock whose holder overran its TTL is not released by that holder
# after someone else took it. One key: Cluster-safe.
_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def _client_kwargs(
    timeout: float | None, connect_timeout: float, *, is_async: bool = False
) -> dict[str, Any]:
    from redis.backoff import NoBackoff

    # Each client its own kind of Retry: redis-py 8 converts a synchronous Retry handed to an
    # asyncio client with a UserWarning (an error where warnings are errors, as in our tests).
    if is_async:
        from redis.asyncio.retry import Retry
    else:
        from redis.retry import Retry  # type: ignore[assignment]

    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": connect_timeout,
        # One retry (no backoff) heals a pooled connection the server closed on restart; the
        # default (3 retries with backoff) would hold a request for seconds while Redis is down.
        "retry": Retry(NoBackoff(), 1),
    }


def _pool(module: Any, url: str, timeout: float, max_connections: int | None) -> Any:
    """redis-py's plain pool (the fastest: a hit is measured against a bare GET) unless a cap is
    asked for; then a blocking pool, so a burst waits up to ``timeout`` for a connection rather
    than failing with "Too many connections".

    The asyncio client gets no ``socket_timeout``: redis-py enforces it with ``asyncio.wait_for``
    around every send, which on Python 3.11 starts a task per command (~15 µs, a fifth of a
    local GET). The backend bounds each async call with one ``asyncio.timeout`` instead."""
    is_async = module.__name__ == "redis.asyncio"
    kwargs = _client_kwargs(None if is_async else timeout, timeout, is_async=is_async)
    if max_connections is None:
        return module.ConnectionPool.from_url(url, **kwargs)
    return module.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, **kwargs
    )


class RedisBackend:
    """Cache in Redis or Valkey through redis-py, pooled, sync and async.

    Give a URL, or ready clients (for Redis Cluster pass ``redis.cluster.RedisCluster`` and
    ``redis.asyncio.cluster.RedisCluster``)::

        backend = RedisBackend(url="redis://localhost:6379/0", prefix="myapp:")

    ``prefix`` namespaces every key so several apps (or tests) can share one database. A lock,
    tag set or value of this backend never leaves that prefix. ``max_connections`` caps each
    pool (callers then wait up to ``timeout`` for a free connection); concurrent async reads of
    one key share a single GET, so a burst on a hot key costs one connection, not hundreds.
    """

    name = "redis"

    def __init__(
        self,
        *,
        url: str | None = None,
        client: Any = None,
        async_client: Any = None,
        prefix: str = "lagless:",
        timeout: float = 0.25,
        max_connections: int | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if url is None and client is None and async_client is None:
            raise ValueError("RedisBackend needs url= or a client")
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.max_connections = max_connections
        self.breaker = breaker or CircuitBreaker()
        self._client = client
        self._aclient = async_client
        #: The loop ``_aclient`` runs on when it was made here from ``url`` (None: the
        #: caller's own client), and such clients by loop.
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._unlock_script: Any = None
        self._aunlock_script: Any = None
        self._reads: dict[str, asyncio.Future[bytes | None]] = {}

    # -- clients, created on first use so importing and configuring cost nothing ------------
    @property
    def client(self) -> Any:
        if self._client is None:
            import redis

            if self.url is None:
                raise BackendUnavailable("no sync Redis client: pass url= or client=")
            pool = _pool(redis, self.url, self.timeout, self.max_connections)
            self._client = redis.Redis(connection_pool=pool)
        return self._client

    @property
    def async_client(self) -> Any:
        client = self._aclient
        if client is not None and self._aclient_loop is None:
            return client  # the caller's own client
        loop = asyncio.get_running_loop()
        if client is not None and self._aclient_loop is loop:
            return client
        # A client built from url= belongs to the event loop it runs on (its pooled
        # connections do), so each loop gets its own. Starlette's TestClient runs each request
        # on a fresh loop outside a `with` block; with one shared client every call there
        # failed with "Event loop is closed" (failing open: the cache silently never hit).
        # Threads running loops of their own keep one client each.
        client = self._loop_clients.get(loop)
        if client is None:
            import redis.asyncio

            if self.url is None:
                raise BackendUnavailable("no async Redis client: pass url= or async_client=")
            pool = _pool(redis.asyncio, self.url, self.timeout, self.max_connections)
            client = redis.asyncio.Redis(connection_pool=pool)
            self._loop_clients[loop] = client
        self._aclient, self._aclient_loop = client, loop
        return client

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _tag_key(self, tag: str) -> str:
        return f"{self.prefix}tag:{tag}"

    def _refuse(self) -> None:
        raise BackendUnavailable("redis circuit breaker is open")

    # -- sync API ----------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        breaker = self.breaker
        if not breaker.allow():
            self._refuse()
        try:
            value = self.client.get(self.prefix + key)
        except Exception:
            breaker.failure()
            raise
        breaker.success()
        return value  # type: ignore[no-any-return]

    def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        if not self.breaker.allow():
            self._refuse()
        ms = max(1, int(ttl * 1000))
        try:
            if tags:
                pipe = self.client.pipeline(transaction=False)
                self._queue_set(pipe, key, value, ms, tags)
                pipe.execute()
            else:
                self.client.set(self._k(key), value, px=ms)
        except Exception:
            self.breaker.failure()
            raise
        self.breaker.success()

    def _queue_set(self, pipe: Any, key: str, value: bytes, ms: int, tags: Sequence[str]) -> None:
        full = self._k(key)
        pipe.set(full, value, px=ms)
        for tag in tags:
            tag_key = self._tag_key(tag)
            pipe.sadd(tag_key, full)
            # The tag set must outlive its longest member: NX sets a first TTL, GT extends it.
            pipe.pexpire(tag_key, ms, nx=True)
            pipe.pexpire(tag_key, ms, gt=True)

    def delete(self, key: str) -> bool:
        return bool(self._run(lambda c: c.delete(self._k(key))))

    def invalidate_tags(self, tags: Iterable[str]) -> list[str]:
        removed: list[str] = []

        def run(c: Any) -> None:
            for tag in tags:
                tag_key = self._tag_key(tag)
                members = list(c.smembers(tag_key))
                pipe = c.pipeline(transaction=False)
                for member in members:
                    pipe.delete(member)  # one DEL per key: each its own slot on a Cluster
                pipe.delete(tag_key)
                deleted = pipe.execute()
                removed.extend(self._strip(m) for m, n in zip(members, deleted, strict=False) if n)

        self._run(run)
        return removed

    def _strip(self, member: bytes | str) -> str:
        text = member.decode() if isinstance(member, bytes) else member
        return text[len(self.prefix) :] if text.startswith(self.prefix) else text

    def lock(self, key: str, ttl: float) -> str | None:
        token = os.urandom(12).hex()
        ok = self._run(lambda c: c.set(self._k(key), token, nx=True, px=max(1, int(ttl * 1000))))
        return token if ok else None

    def unlock(self, key: str, token: str) -> None:
        if self._unlock_script is None:
            self._unlock_script = self.client.register_script(_UNLOCK)
        script = self._unlock_script
        self._run(lambda c: script(keys=[self._k(key)], args=[token], client=c))

    def clear(self) -> None:
        """Delete every key under this backend's prefix (SCAN, never KEYS)."""

        def run(c: Any) -> None:
            for key in c.scan_iter(match=self.prefix + "*", count=500):
                c.delete(key)

        self._run(run)

    def _run(self, fn: Any) -> Any:
        if not self.breaker.allow():
            self._refuse()
        try:
            result = fn(self.client)
        except Exception:
            self.breaker.failure()
            raise
        self.breaker.success()
        return result

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client.connection_pool.disconnect()
            self._client = None

    # -- async API ---------------------------------------------------------------------------
    async def aget(self, key: str) -> bytes | None:
        # The hit path: one breaker check, one GET, kept flat because it is measured against a
        # bare redis-py GET. Concurrent reads of one key share the GET in flight (a thousand
        # requests at a hot key's expiry would otherwise each take a pooled connection).
        loop = asyncio.get_running_loop()
        pending = self._reads.get(key)
        if pending is not None and pending.get_loop() is loop:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled
                # the reader we joined was cancelled (its client went away): read ourselves
        breaker = self.breaker
        if not breaker.allow():
            self._refuse()
        future: asyncio.Future[bytes | None] = loop.create_future()
        self._reads[key] = future
        try:
            async with asyncio.timeout(self.timeout):
                value = await self.async_client.get(self.prefix + key)
        except Exception as exc:
            breaker.failure()
            future.set_exception(exc)
            future.exception()  # retrieved: no warning when nobody else was waiting
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            if self._reads.get(key) is future:
                del self._reads[key]
        breaker.success()
        future.set_result(value)
        return value  # type: ignore[no-any-return]

    async def aset(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        ms = max(1, int(ttl * 1000))

        async def run(c: Any) -> None:
            if tags:
                pipe = c.pipeline(transaction=False)
                self._queue_set(pipe, key, value, ms, tags)
                await pipe.execute()
            else:
                await c.set(self._k(key), value, px=ms)

        await self._arun(run)

    async def adelete(self, key: str) -> bool:
        async def run(c: Any) -> Any:
            return await c.delete(self._k(key))

        return bool(await self._arun(run))

    async def ainvalidate_tags(self, tags: Iterable[str]) -> list[str]:
        removed: list[str] = []

        async def run(c: Any) -> None:
            for tag in tags:
                tag_key = self._tag_key(tag)
                members = list(await c.smembers(tag_key))
                pipe = c.pipeline(transaction=False)
                for member in members:
                    pipe.delete(member)
                pipe.delete(tag_key)
                deleted = await pipe.execute()
                removed.extend(self._strip(m) for m, n in zip(members, deleted, strict=False) if n)

        await self._arun(run)
        return removed

    async def alock(self, key: str, ttl: float) -> str | None:
        token = os.urandom(12).hex()

        async def run(c: Any) -> Any:
            return await c.set(self._k(key), token, nx=True, px=max(1, int(ttl * 1000)))

        return token if await self._arun(run) else None

    async def aunlock(self, key: str, token: str) -> None:
        if self._aunlock_script is None:
            self._aunlock_script = self.async_client.register_script(_UNLOCK)
        script = self._aunlock_script

        async def run(c: Any) -> Any:
            return await script(keys=[self._k(key)], args=[token], client=c)

        await self._arun(run)

    async def aclear(self) -> None:
        async def run(c: Any) -> None:
            async for key in c.scan_iter(match=self.prefix + "*", count=500):
                await c.delete(key)

        await self._arun(run, bounded=False)  # a maintenance sweep: no per-call bound

    async def _arun(self, fn: Any, bounded: bool = True) -> Any:
        if not self.breaker.allow():
            self._refuse()
        try:
            async with asyncio.timeout(self.timeout if bounded else None):
                result = await fn(self.async_client)
        except Exception:
            self.breaker.failure()
            raise
        self.breaker.success()
        return result

    async def aclose(self) -> None:
        """Close the async client of the running event loop (clients of other loops are
        closed from their own loops)."""
        if self._aclient_loop is None:
            client = self._aclient
        else:
            client = self._loop_clients.pop(asyncio.get_running_loop(), None)
        if client is None:
            return
        await client.aclose()
        await client.connection_pool.disconnect()
        if self._aclient is client:
            self._aclient = None
            self._aclient_loop = None

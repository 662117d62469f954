"""The cache as users hold it: a backend, a serializer, fail-open error handling and spans.

:class:`Cache` turns values into enveloped bytes (see ``_backend.pack``), reads them back with
their freshness, records every call as a ``cache`` span when a request is being traced, and
swallows (counts, logs once per interval) every backend error: an unreachable cache is treated
as a miss, a failed write as done. An outage costs latency, never a failed request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from time import perf_counter_ns as _now
from typing import Any, NamedTuple

from lagless._spans import record
from lagless._trace import _current_trace
from lagless.cache._backend import CacheBackend, pack, report_backend_error, unpack
from lagless.cache._memory import MemoryBackend
from lagless.cache._serialize import SerializationError, Serializer, default_serializer

# Set by :func:`bypass`: cached functions run their origin and neither read nor write the cache.
_bypass: ContextVar[bool] = ContextVar("lagless_cache_bypass", default=False)


@contextmanager
def bypass() -> Any:
    """Run the block without the cache (reads and writes skipped), e.g. for an admin view that
    must see live data::

        with lagless.cache.bypass():
            report = build_report(org_id)
    """
    token = _bypass.set(True)
    try:
        yield
    finally:
        _bypass.reset(token)


class Lookup(NamedTuple):
    """A decoded entry: the value and its freshness bounds (Unix time)."""

    value: Any
    fresh_until: float
    expires_at: float


class Cache:
    """A cache over one backend. Most code uses :func:`cached`; use a ``Cache`` directly for
    explicit get/set and to group decorators on one backend::

        cache = Cache(backend=RedisBackend(url=REDIS_URL, prefix="shop:"))

        @cache.cached(ttl=60, key="product:{pid}", tags=["product:{pid}"])
        async def product(pid: int) -> dict: ...

        await cache.ainvalidate_tags("product:42")

    ``clock`` returns Unix time (freshness is stored as wall time so processes agree on it);
    inject one in tests.
    """

    def __init__(
        self,
        *,
        backend: CacheBackend | None = None,
        serializer: Serializer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend: CacheBackend = backend if backend is not None else MemoryBackend()
        self.serializer = serializer or default_serializer()
        self.clock = clock
        self.backend_name: str = getattr(self.backend, "name", type(self.backend).__name__)

    # -- encoding ----------------------------------------------------------------------------
    def encode(self, value: Any, ttl: float, stale_ttl: float = 0.0) -> tuple[bytes, float]:
        """The stored bytes and the backend TTL (fresh time plus the stale window)."""
        now = self.clock()
        payload = self.serializer.dumps(value)
        keep = ttl + max(stale_ttl, 0.0)
        return pack(self.serializer.tag, payload, now + ttl, now + keep), keep

    def decode(self, raw: bytes) -> Lookup | None:
        """The entry in ``raw``, or None when it is foreign, expired, or cannot be decoded."""
        parts = unpack(raw)
        if parts is None or parts[0] != self.serializer.tag:
            return None
        _, fresh_until, expires_at, payload = parts
        if expires_at <= self.clock():
            return None
        try:
            return Lookup(self.serializer.loads(payload), fresh_until, expires_at)
        except SerializationError as exc:
            report_backend_error(self.backend_name, "decode", exc)
            return None

    def _span(self, op: str, start: int, shape: str, **attrs: Any) -> None:
        trace = _current_trace.get()
        if trace is not None:
            record(trace, "cache", op, start, key=shape, backend=self.backend_name, **attrs)

    # -- sync API ----------------------------------------------------------------------------
    def lookup(self, key: str, shape: str | None = None) -> Lookup | None:
        """The entry under ``key`` with its freshness (stale entries included), or None."""
        start = _now()
        try:
            raw = self.backend.get(key)
        except Exception as exc:
            report_backend_error(self.backend_name, "get", exc)
            self._span("GET", start, shape or key, hit=False, error="backend unavailable")
            return None
        entry = None if raw is None else self.decode(raw)
        self._span("GET", start, shape or key, hit=entry is not None)
        return entry

    def get(self, key: str, default: Any = None) -> Any:
        """The fresh value under ``key``, or ``default``."""
        entry = self.lookup(key)
        if entry is None or entry.fresh_until <= self.clock():
            return default
        return entry.value

    def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: float,
        tags: Sequence[str] = (),
        stale_ttl: float = 0.0,
        shape: str | None = None,
    ) -> bool:
        """Store ``value`` for ``ttl`` seconds (kept ``stale_ttl`` more for stale serving).
        False when the backend refused it (the error is counted, never raised)."""
        start = _now()
        data, keep = self.encode(value, ttl, stale_ttl)
        try:
            self.backend.set(key, data, keep, tags)
        except Exception as exc:
            report_backend_error(self.backend_name, "set", exc)
            self._span("SET", start, shape or key, bytes=len(data), error="backend unavailable")
            return False
        self._span("SET", start, shape or key, bytes=len(data))
        return True

    def delete(self, key: str) -> bool:
        try:
            return self.backend.delete(key)
        except Exception as exc:
            report_backend_error(self.backend_name, "delete", exc)
            return False

    def invalidate_tags(self, *tags: str) -> list[str]:
        """Delete every entry stored with any of ``tags``; the keys removed."""
        try:
            return self.backend.invalidate_tags(tags)
        except Exception as exc:
            report_backend_error(self.backend_name, "invalidate_tags", exc)
            return []

    # -- async API ---------------------------------------------------------------------------
    async def alookup(self, key: str, shape: str | None = None) -> Lookup | None:
        start = _now()
        try:
            raw = await self.backend.aget(key)
        except Exception as exc:
            report_backend_error(self.backend_name, "get", exc)
            self._span("GET", start, shape or key, hit=False, error="backend unavailable")
            return None
        entry = None if raw is None else self.decode(raw)
        self._span("GET", start, shape or key, hit=entry is not None)
        return entry

    async def aget(self, key: str, default: Any = None) -> Any:
        entry = await self.alookup(key)
        if entry is None or entry.fresh_until <= self.clock():
            return default
        return entry.value

    async def aset(
        self,
        key: str,
        value: Any,
        *,
        ttl: float,
        tags: Sequence[str] = (),
        stale_ttl: float = 0.0,
        shape: str | None = None,
    ) -> bool:
        start = _now()
        data, keep = self.encode(value, ttl, stale_ttl)
        try:
            await self.backend.aset(key, data, keep, tags)
        except Exception as exc:
            report_backend_error(self.backend_name, "set", exc)
            self._span("SET", start, shape or key, bytes=len(data), error="backend unavailable")
            return False
        self._span("SET", start, shape or key, bytes=len(data))
        return True

    async def adelete(self, key: str) -> bool:
        try:
            return await self.backend.adelete(key)
        except Exception as exc:
            report_backend_error(self.backend_name, "delete", exc)
            return False

    async def ainvalidate_tags(self, *tags: str) -> list[str]:
        try:
            return await self.backend.ainvalidate_tags(tags)
        except Exception as exc:
            report_backend_error(self.backend_name, "invalidate_tags", exc)
            return []

    # -- locks (stampede protection across processes); failures mean "no lock" -------------
    def try_lock(self, key: str, ttl: float) -> str | bool | None:
        """A token; None when someone else holds it; False when the backend is unreachable."""
        try:
            return self.backend.lock(key, ttl)
        except Exception as exc:
            report_backend_error(self.backend_name, "lock", exc)
            return False

    def release(self, key: str, token: str) -> None:
        try:
            self.backend.unlock(key, token)
        except Exception as exc:
            report_backend_error(self.backend_name, "unlock", exc)

    async def atry_lock(self, key: str, ttl: float) -> str | bool | None:
        try:
            return await self.backend.alock(key, ttl)
        except Exception as exc:
            report_backend_error(self.backend_name, "lock", exc)
            return False

    async def arelease(self, key: str, token: str) -> None:
        try:
            await self.backend.aunlock(key, token)
        except Exception as exc:
            report_backend_error(self.backend_name, "unlock", exc)

    def cached(self, ttl: float, **options: Any) -> Callable[[Callable[..., Any]], Any]:
        """:func:`lagless.cache.cached` bound to this cache."""
        from lagless.cache._decorator import cached

        return cached(ttl, cache=self, **options)


_default: Cache | None = None


def default_cache() -> Cache:
    """The process-wide cache used by :func:`cached` without ``cache=`` (in memory until
    :func:`set_default_cache` says otherwise)."""
    global _default
    if _default is None:
        _default = Cache()
    return _default


def set_default_cache(cache: Cache | None) -> None:
    """Make ``cache`` the default (``None``: back to a fresh in-memory cache on next use)."""
    global _default
    _default = cache


def invalidate_tags(*tags: str, cache: Cache | None = None) -> list[str]:
    """Delete entries tagged with any of ``tags`` in ``cache`` (default: the default cache)."""
    return (cache or default_cache()).invalidate_tags(*tags)

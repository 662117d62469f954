"""Response entries in a cache backend: primary key, Vary marker, variants.

A response without ``Vary`` is stored under its primary key, so a hit is one backend read (one
GET on Redis). A varying response stores a small marker naming the request headers that select
it under the primary key and the response itself under the variant key (two reads on a hit).
Every key is written with its host+path tag (``_invalidate.path_tag``), so an unsafe request
drops all variants of a path in one ``invalidate_tags`` call (RFC 9111 §4.4) without the hit
path reading anything more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from time import perf_counter_ns as _now
from typing import Any

from lagless.cache._backend import CacheBackend
from lagless.cache._cache import Cache
from lagless.cache._policy import CachePolicy
from lagless.cache._response import (
    StoredResponse,
    VaryMarker,
    decode_entry,
    effective_vary,
    parse_vary,
    variant_key,
)


class RawBytes:
    """The identity serializer: response entries are already bytes."""

    tag = 9

    def dumps(self, value: Any) -> bytes:
        if not isinstance(value, bytes):
            raise TypeError("RawBytes stores bytes only")
        return value

    def loads(self, data: bytes) -> Any:
        return bytes(data)


class ResponseStore:
    """Reads and writes stored responses, failing open like every cache path."""

    def __init__(self, backend: CacheBackend, clock: Callable[[], float]) -> None:
        self.cache = Cache(backend=backend, serializer=RawBytes(), clock=clock)
        self.clock = clock

    def _resolve_first(self, raw: Any) -> StoredResponse | VaryMarker | None:
        if raw is None or raw.fresh_until <= self.clock():
            return None
        return decode_entry(raw.value)

    def lookup(
        self, primary: str, headers: Mapping[str, str], shape: str
    ) -> tuple[StoredResponse | None, str]:
        """(entry, "hit") or (None, RFC 9211 fwd reason)."""
        first = self._resolve_first(self.cache.lookup(primary, shape))
        if isinstance(first, VaryMarker):
            second = self._resolve_first(
                self.cache.lookup(variant_key(primary, first.vary, headers), shape)
            )
            if isinstance(second, StoredResponse):
                return second, "hit"
            return None, "vary-miss"
        if isinstance(first, StoredResponse):
            return first, "hit"
        return None, "uri-miss"

    async def alookup(
        self, primary: str, headers: Mapping[str, str], shape: str
    ) -> tuple[StoredResponse | None, str]:
        first = self._resolve_first(await self.cache.alookup(primary, shape))
        if isinstance(first, VaryMarker):
            second = self._resolve_first(
                await self.cache.alookup(variant_key(primary, first.vary, headers), shape)
            )
            if isinstance(second, StoredResponse):
                return second, "hit"
            return None, "vary-miss"
        if isinstance(first, StoredResponse):
            return first, "hit"
        return None, "uri-miss"

    def _plan(
        self, primary: str, headers: Mapping[str, str], entry: StoredResponse, policy: CachePolicy
    ) -> list[tuple[str, bytes]]:
        lower = dict(entry.headers)
        vary = effective_vary(parse_vary(lower.get("vary")), policy)
        if not vary:
            return [(primary, entry.encode())]
        return [
            (primary, VaryMarker(vary).encode()),
            (variant_key(primary, vary, headers), entry.encode()),
        ]

    def store(
        self,
        primary: str,
        headers: Mapping[str, str],
        entry: StoredResponse,
        policy: CachePolicy,
        shape: str,
        tag: str,
    ) -> bool:
        ok = True
        for key, data in self._plan(primary, headers, entry, policy):
            ok = self.cache.set(key, data, ttl=entry.ttl, tags=(tag,), shape=shape) and ok
        return ok

    def invalidate(self, tags: Sequence[str]) -> None:
        """Drop every entry carrying one of ``tags`` (fail-open, recorded as a span)."""
        if tags:
            start = _now()
            removed = self.cache.invalidate_tags(*tags)
            self.cache._span("INVALIDATE", start, "resp:invalidate", keys=len(removed))

    async def ainvalidate(self, tags: Sequence[str]) -> None:
        if tags:
            start = _now()
            removed = await self.cache.ainvalidate_tags(*tags)
            self.cache._span("INVALIDATE", start, "resp:invalidate", keys=len(removed))

    async def astore(
        self,
        primary: str,
        headers: Mapping[str, str],
        entry: StoredResponse,
        policy: CachePolicy,
        shape: str,
        tag: str,
    ) -> bool:
        ok = True
        for key, data in self._plan(primary, headers, entry, policy):
            ok = await self.cache.aset(key, data, ttl=entry.ttl, tags=(tag,), shape=shape) and ok
        return ok

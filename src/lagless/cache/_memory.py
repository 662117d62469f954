"""In-process cache: LRU, bounded by entry count and by bytes, with per-key TTL.

One ``threading.Lock`` guards every mutation, and no critical section awaits, so the same
backend is safe from many threads and many asyncio tasks at once. The async methods answer
directly (there is no I/O to wait for).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from threading import Lock

# Rough fixed cost of one entry (OrderedDict node, tuple, key object) added to its byte count,
# so a flood of tiny values is bounded too.
ENTRY_OVERHEAD = 96


class MemoryBackend:
    """A bounded in-memory LRU cache.

    ``max_entries`` and ``max_bytes`` both bound it; the least recently used entries are evicted
    first when either is exceeded. ``clock`` (seconds, monotonic) is injectable for tests::

        cache = Cache(backend=MemoryBackend(max_entries=50_000, max_bytes=64 * 2**20))
    """

    name = "memory"

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        # key -> (value, expires_at, size); order = recency (last = most recently used).
        self._data: OrderedDict[str, tuple[bytes, float, int]] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._key_tags: dict[str, tuple[str, ...]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._lock = Lock()
        self._bytes = 0
        self._tokens = itertools.count()
        self._token_prefix = os.urandom(4).hex()
        #: Entries evicted to respect the bounds (not counting expiry).
        self.evictions = 0

    # -- introspection ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    # -- internals (caller holds the lock) -------------------------------------------------
    def _drop(self, key: str) -> bool:
        entry = self._data.pop(key, None)
        if entry is None:
            return False
        self._bytes -= entry[2]
        tags = self._key_tags.pop(key, ())
        for tag in tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]
        return True

    # -- sync API ----------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        with self._lock:
            if entry[1] <= self._clock():
                if self._data.get(key) is entry:
                    self._drop(key)
                return None
            try:
                self._data.move_to_end(key)
            except KeyError:  # dropped by another thread between the read and the lock
                return None
        return entry[0]

    def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        size = len(value) + len(key) + ENTRY_OVERHEAD
        if ttl <= 0 or size > self.max_bytes:
            self.delete(key)
            return
        expires = self._clock() + ttl
        with self._lock:
            self._drop(key)
            self._data[key] = (value, expires, size)
            self._bytes += size
            if tags:
                tag_tuple = tuple(tags)
                self._key_tags[key] = tag_tuple
                for tag in tag_tuple:
                    self._tags.setdefault(tag, set()).add(key)
            while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
                oldest = next(iter(self._data))
                self._drop(oldest)
                self.evictions += 1

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._drop(key)

    def delete_many(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._drop(key)

    def invalidate_tags(self, tags: Iterable[str]) -> list[str]:
        removed: list[str] = []
        with self._lock:
            for tag in tags:
                for key in list(self._tags.get(tag, ())):
                    if self._drop(key):
                        removed.append(key)
        return removed

    def lock(self, key: str, ttl: float) -> str | None:
        now = self._clock()
        with self._lock:
            held = self._locks.get(key)
            if held is not None and held[1] > now:
                return None
            token = f"{self._token_prefix}-{next(self._tokens)}"
            self._locks[key] = (token, now + ttl)
            return token

    def unlock(self, key: str, token: str) -> None:
        with self._lock:
            held = self._locks.get(key)
            if held is not None and held[0] == token:
                del self._locks[key]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._tags.clear()
            self._key_tags.clear()
            self._bytes = 0

    def close(self) -> None:
        self.clear()

    # -- async API: no I/O, so answer directly ---------------------------------------------
    async def aget(self, key: str) -> bytes | None:
        return self.get(key)

    async def aset(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        self.set(key, value, ttl, tags)

    async def adelete(self, key: str) -> bool:
        return self.delete(key)

    async def ainvalidate_tags(self, tags: Iterable[str]) -> list[str]:
        return self.invalidate_tags(tags)

    async def alock(self, key: str, ttl: float) -> str | None:
        return self.lock(key, ttl)

    async def aunlock(self, key: str, token: str) -> None:
        self.unlock(key, token)

    async def aclose(self) -> None:
        self.clear()

"""Two tiers: a small in-process memory cache in front of Redis, kept coherent by pub/sub.

Every write or delete through a :class:`TieredBackend` is published on a Redis channel; every
other process's listener drops the named keys from its memory tier. Two rules keep a process from
serving a value another process has replaced:

- the memory tier is used only while the listener is subscribed. When the subscription drops
  (Redis restarting, network), the tier is emptied and bypassed until it is back, since
  invalidations sent meanwhile were lost;
- a value read from Redis is copied into memory only if no invalidation arrived while the GET was
  in flight (a generation counter), so a late GET cannot resurrect an old value.

Memory copies also live at most ``local_ttl`` seconds, bounding staleness should a message be lost
in some way the rules above do not see.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from lagless.cache._backend import expires_at_of, report_backend_error
from lagless.cache._memory import MemoryBackend
from lagless.cache._redis import RedisBackend

logger = logging.getLogger("lagless.cache")


class TieredBackend:
    """Memory in front of Redis, coherent across processes::

        backend = TieredBackend(remote=RedisBackend(url=REDIS_URL), local_ttl=10)

    Call :meth:`close` at shutdown (it stops the listener thread).
    """

    name = "tiered"

    def __init__(
        self,
        *,
        remote: RedisBackend,
        local: MemoryBackend | None = None,
        local_ttl: float = 30.0,
        channel: str | None = None,
    ) -> None:
        self.remote = remote
        self.local = local or MemoryBackend(max_entries=10_000, max_bytes=32 * 1024 * 1024)
        self.local_ttl = local_ttl
        self.channel = channel or f"{remote.prefix}__invalidate"
        self._source = os.urandom(8).hex()
        self._generation = 0
        self._live = False  # subscribed: the memory tier may be used
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(
            target=self._listen, name="lagless-cache-invalidation", daemon=True
        )
        self._thread.start()

    # -- the listener ------------------------------------------------------------------------
    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Block until the listener is subscribed (the memory tier is in use)."""
        return self._subscribed.wait(timeout)

    def _go_dark(self) -> None:
        self._live = False
        self._subscribed.clear()
        self._generation += 1
        self.local.clear()

    def _listen(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            pubsub: Any = None
            try:
                pubsub = self.remote.client.pubsub(ignore_subscribe_messages=False)
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.local.clear()
                        self._live = True
                        self._subscribed.set()
                        backoff = 0.1
                    elif message["type"] == "message":
                        self._apply(message["data"])
            except Exception as exc:
                self._go_dark()
                if not self._stop.is_set():
                    report_backend_error("tiered", "subscribe", exc)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 2.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass
        self._go_dark()

    def _apply(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if message.get("src") == self._source:
            return
        self._generation += 1
        if message.get("all"):
            self.local.clear()
        else:
            self.local.delete_many(message.get("keys", ()))

    def _message(self, keys: Iterable[str]) -> str:
        return json.dumps({"src": self._source, "keys": list(keys)})

    def _fill(self, key: str, value: bytes, generation: int) -> None:
        if not self._live or generation != self._generation:
            return
        expires = expires_at_of(value)
        ttl = self.local_ttl if expires is None else min(self.local_ttl, expires - time.time())
        if ttl > 0:
            self.local.set(key, value, ttl)

    # -- sync API ----------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        if self._live:
            value = self.local.get(key)
            if value is not None:
                return value
        generation = self._generation
        value = self.remote.get(key)
        if value is not None:
            self._fill(key, value, generation)
        return value

    def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        self.local.delete(key)
        self.remote.set(key, value, ttl, tags)
        self.remote.client.publish(self.channel, self._message([key]))
        if self._live:
            self.local.set(key, value, min(ttl, self.local_ttl), tags)

    def delete(self, key: str) -> bool:
        self.local.delete(key)
        found = self.remote.delete(key)
        self.remote.client.publish(self.channel, self._message([key]))
        return found

    def invalidate_tags(self, tags: Iterable[str]) -> list[str]:
        tags = list(tags)
        self.local.invalidate_tags(tags)
        removed = self.remote.invalidate_tags(tags)
        self.local.delete_many(removed)
        if removed:
            self.remote.client.publish(self.channel, self._message(removed))
        return removed

    def lock(self, key: str, ttl: float) -> str | None:
        return self.remote.lock(key, ttl)

    def unlock(self, key: str, token: str) -> None:
        self.remote.unlock(key, token)

    def clear(self) -> None:
        self.local.clear()
        self.remote.clear()
        self.remote.client.publish(self.channel, json.dumps({"src": self._source, "all": True}))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    # -- async API ---------------------------------------------------------------------------
    async def aget(self, key: str) -> bytes | None:
        if self._live:
            value = self.local.get(key)
            if value is not None:
                return value
        generation = self._generation
        value = await self.remote.aget(key)
        if value is not None:
            self._fill(key, value, generation)
        return value

    async def aset(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        self.local.delete(key)
        await self.remote.aset(key, value, ttl, tags)
        await self.remote.async_client.publish(self.channel, self._message([key]))
        if self._live:
            self.local.set(key, value, min(ttl, self.local_ttl), tags)

    async def adelete(self, key: str) -> bool:
        self.local.delete(key)
        found = await self.remote.adelete(key)
        await self.remote.async_client.publish(self.channel, self._message([key]))
        return found

    async def ainvalidate_tags(self, tags: Iterable[str]) -> list[str]:
        tags = list(tags)
        self.local.invalidate_tags(tags)
        removed = await self.remote.ainvalidate_tags(tags)
        self.local.delete_many(removed)
        if removed:
            await self.remote.async_client.publish(self.channel, self._message(removed))
        return removed

    async def alock(self, key: str, ttl: float) -> str | None:
        return await self.remote.alock(key, ttl)

    async def aunlock(self, key: str, token: str) -> None:
        await self.remote.aunlock(key, token)

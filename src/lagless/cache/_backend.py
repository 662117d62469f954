"""The one small protocol every cache backend implements, and the envelope stored in it.

A backend stores opaque bytes under string keys with a time to live, remembers which keys carry
which tags, and offers a best-effort lock (for stampede protection across processes). It has a
sync and an async face because lagless caches both sync (WSGI, Django, Flask) and async (ASGI)
code; a backend without real async I/O (memory) simply answers the async calls directly.

Backends may raise on failure (Redis down, timeout). The layers above (``Cache``, the
middlewares) catch every backend error, count it, and carry on without the cache: an outage
makes requests slower, never failed.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

logger = logging.getLogger("lagless.cache")


@runtime_checkable
class CacheBackend(Protocol):
    """Where cached bytes live. Implemented by :class:`MemoryBackend`, :class:`RedisBackend`
    and :class:`TieredBackend`; implement it to plug in another store."""

    #: Short name shown in ``cache`` spans and metrics ("memory", "redis", "tiered").
    name: str

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None: ...
    def delete(self, key: str) -> bool: ...
    def invalidate_tags(self, tags: Iterable[str]) -> list[str]:
        """Delete every key stored with any of ``tags``; return the keys deleted."""
        ...

    def lock(self, key: str, ttl: float) -> str | None:
        """Take a lock named ``key`` for at most ``ttl`` seconds; a token, or None if held."""
        ...

    def unlock(self, key: str, token: str) -> None: ...
    def clear(self) -> None: ...

    async def aget(self, key: str) -> bytes | None: ...
    async def aset(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None: ...
    async def adelete(self, key: str) -> bool: ...
    async def ainvalidate_tags(self, tags: Iterable[str]) -> list[str]: ...
    async def alock(self, key: str, ttl: float) -> str | None: ...
    async def aunlock(self, key: str, token: str) -> None: ...


# --- the envelope --------------------------------------------------------------------------
# Stored bytes = 1 version byte, 1 serializer tag, fresh_until and expires_at as big-endian
# doubles (Unix time), then the payload. Carrying fresh_until inside the value is what lets a
# hit cost ONE command (GET) and still know whether it is fresh, stale-but-servable, or dead.
_HEADER = struct.Struct(">BBdd")
HEADER_SIZE = _HEADER.size
_VERSION = 1


def pack(serializer_tag: int, payload: bytes, fresh_until: float, expires_at: float) -> bytes:
    return _HEADER.pack(_VERSION, serializer_tag, fresh_until, expires_at) + payload


def unpack(data: bytes) -> tuple[int, float, float, bytes] | None:
    """(serializer tag, fresh_until, expires_at, payload), or None for foreign bytes."""
    if len(data) < HEADER_SIZE:
        return None
    version, tag, fresh_until, expires_at = _HEADER.unpack_from(data)
    if version != _VERSION:
        return None
    return tag, fresh_until, expires_at, data[HEADER_SIZE:]


def expires_at_of(data: bytes) -> float | None:
    if len(data) < HEADER_SIZE or data[0] != _VERSION:
        return None
    return float(_HEADER.unpack_from(data)[3])


# --- outage accounting ---------------------------------------------------------------------
_errors_lock = threading.Lock()
_last_logged: dict[str, float] = {}
#: Backend errors seen so far, by ``"<backend>:<operation>"``. Read by tests and metrics.
backend_errors: dict[str, int] = {}
LOG_INTERVAL_S = 30.0


def report_backend_error(backend: str, op: str, exc: BaseException) -> None:
    """Count a failed backend call and log it at most once per interval per backend, so a dead
    Redis under load produces one warning every 30 s rather than thousands a second."""
    site = f"{backend}:{op}"
    now = time.monotonic()
    with _errors_lock:
        backend_errors[site] = backend_errors.get(site, 0) + 1
        last = _last_logged.get(backend)
        if last is not None and now - last < LOG_INTERVAL_S:
            return
        _last_logged[backend] = now
    logger.warning(
        "lagless cache: %s %s failed (%s: %s); serving without the cache",
        backend,
        op,
        type(exc).__name__,
        exc,
    )


def reset_backend_errors() -> None:
    with _errors_lock:
        backend_errors.clear()
        _last_logged.clear()

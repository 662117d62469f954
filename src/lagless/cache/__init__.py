"""Caching that is fast, safe, and survives its backend failing.

- :func:`cached`: cache sync/async function results (single-flight, a Redis lock across
  processes, stale-while-revalidate, stale-if-error, tags, bypass), recorded as ``cache`` spans;
- backends behind one protocol: :class:`MemoryBackend` (LRU, bounded by entries and bytes),
  :class:`RedisBackend` (Redis, Valkey, Cluster; sync and async) and :class:`TieredBackend`
  (memory in front of Redis, coherent across processes through pub/sub);
- :class:`ResponseCacheMiddleware` / :class:`ConditionalMiddleware` for ASGI (and their WSGI,
  Django and Flask twins in :mod:`lagless.cache.wsgi`, :mod:`lagless.cache.django`,
  :mod:`lagless.cache.flask`), driven by declarative :class:`CachePolicy` per route;
- outages fail open: backend errors are counted, logged once per interval, a circuit breaker
  stops calls to a dead backend, and the cache recovers by itself.

See docs/caching.md.
"""

from __future__ import annotations

from lagless.cache._backend import CacheBackend, backend_errors
from lagless.cache._breaker import BackendUnavailable, CircuitBreaker
from lagless.cache._cache import (
    Cache,
    bypass,
    default_cache,
    invalidate_tags,
    set_default_cache,
)
from lagless.cache._conditional import evaluate, parse_etags, strong_etag
from lagless.cache._decorator import CachedFunction, UnstableKeyError, cached
from lagless.cache._memory import MemoryBackend
from lagless.cache._policy import (
    DEFAULT_CREDENTIAL_HEADERS,
    CachePolicies,
    CachePolicy,
    RequestInfo,
)
from lagless.cache._redis import RedisBackend
from lagless.cache._serialize import (
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    SerializationError,
    Serializer,
)
from lagless.cache._tiered import TieredBackend
from lagless.cache.asgi import ConditionalMiddleware, ResponseCacheMiddleware
from lagless.cache.wsgi import ConditionalWSGIMiddleware, ResponseCacheWSGIMiddleware

__all__ = [
    "DEFAULT_CREDENTIAL_HEADERS",
    "BackendUnavailable",
    "Cache",
    "CacheBackend",
    "CachePolicies",
    "CachePolicy",
    "CachedFunction",
    "CircuitBreaker",
    "ConditionalMiddleware",
    "ConditionalWSGIMiddleware",
    "JsonSerializer",
    "MemoryBackend",
    "MsgpackSerializer",
    "PickleSerializer",
    "RedisBackend",
    "RequestInfo",
    "ResponseCacheMiddleware",
    "ResponseCacheWSGIMiddleware",
    "SerializationError",
    "Serializer",
    "TieredBackend",
    "UnstableKeyError",
    "backend_errors",
    "bypass",
    "cached",
    "default_cache",
    "evaluate",
    "invalidate_tags",
    "parse_etags",
    "set_default_cache",
    "strong_etag",
]

from __future__ import annotations

import lagless
import lagless.cache


def test_all_is_sorted_and_exported() -> None:
    names = lagless.cache.__all__
    # ruff's RUF022 order: CONSTANTS, then classes, then functions, each sorted.
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[:1].isupper(), n))
    assert all(hasattr(lagless.cache, name) for name in names)
    for name in (
        "cached",
        "Cache",
        "CachePolicy",
        "CachePolicies",
        "MemoryBackend",
        "RedisBackend",
        "TieredBackend",
        "ResponseCacheMiddleware",
        "ConditionalMiddleware",
    ):
        assert name in lagless.__all__
        assert getattr(lagless, name) is getattr(lagless.cache, name)


def test_backends_satisfy_the_protocol() -> None:
    memory = lagless.cache.MemoryBackend()
    redis = lagless.cache.RedisBackend(url="redis://127.0.0.1:1/0")  # never connected
    assert isinstance(memory, lagless.cache.CacheBackend)
    assert isinstance(redis, lagless.cache.CacheBackend)

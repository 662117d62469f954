"""``@cached``: cache a sync or async function's results, safely under load.

- single-flight: concurrent misses for one key in one process share one origin call;
- across processes, a Redis lock (``SET NX PX``) lets one process compute while the others wait
  for its result (polling the key) or, after ``lock_ttl``, compute themselves (fail open);
- stale-while-revalidate: a stale entry is served at once and refreshed once in the background;
- stale-if-error: if the origin raises, a stale entry within the window is served instead;
- invalidation by key (``fn.invalidate(*args)``) and by tag (``cache.invalidate_tags(...)``);
- per-call bypass: ``fn.refresh(*args)`` recomputes and stores; ``with bypass():`` skips the cache.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import hashlib
import inspect
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from lagless._trace import _current_trace
from lagless.cache._backend import report_backend_error, unpack
from lagless.cache._cache import Cache, Lookup, _bypass, default_cache
from lagless.cache._memory import MemoryBackend
from lagless.cache._serialize import SerializationError

KeySpec = str | Callable[..., str] | None

# Background refreshes of sync functions run here (never on the caller's thread).
_refresh_pool: concurrent.futures.ThreadPoolExecutor | None = None
_refresh_pool_lock = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _refresh_pool
    with _refresh_pool_lock:
        if _refresh_pool is None:
            _refresh_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="lagless-cache-refresh"
            )
        return _refresh_pool


class UnstableKeyError(TypeError):
    """An argument's ``repr`` includes a memory address, so it cannot name a cache entry."""


def _args_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    text = repr(args) if not kwargs else f"{args!r}{sorted(kwargs.items())!r}"
    if " at 0x" in text:
        raise UnstableKeyError(
            "a cached function's argument has a repr with a memory address (e.g. `self`), "
            "which would give a new key every process; pass key='...{name}...' or key=callable"
        )
    if len(text) > 120:
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return text


def _key_builder(fn: Callable[..., Any], key: KeySpec) -> tuple[Callable[..., str], str]:
    """A function (args, kwargs) -> key, and the key's *shape* for spans (no argument values,
    so tokens or e-mail addresses in arguments never reach a trace)."""
    qualname = f"{fn.__module__}.{fn.__qualname__}"
    if key is None:
        prefix = qualname + ":"

        def default_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            return prefix + _args_key(args, kwargs)

        return default_key, qualname
    if callable(key):
        custom = key

        def callable_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            return str(custom(*args, **kwargs))

        return callable_key, qualname
    template = key
    params = list(inspect.signature(fn).parameters.values())
    positional = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    try:
        template.format_map({p.name: "" for p in params})
    except (KeyError, IndexError) as exc:
        raise ValueError(
            f"cache key {template!r} names {exc} which {qualname} does not take"
        ) from exc

    def template_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        values = dict(defaults)
        values.update(zip(positional, args, strict=False))
        values.update(kwargs)
        return template.format_map(values)

    return template_key, template


def _tag_builder(fn: Callable[..., Any], tags: Sequence[str]) -> Callable[..., list[str]] | None:
    if not tags:
        return None
    if all("{" not in t for t in tags):
        fixed = list(tags)
        return lambda args, kwargs: fixed
    builder_for = [_key_builder(fn, t)[0] for t in tags]
    return lambda args, kwargs: [b(args, kwargs) for b in builder_for]


class _Flight:
    """A sync in-process single-flight slot: the first caller computes, the others wait."""

    __slots__ = ("error", "event", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class CachedFunction:
    """What :func:`cached` returns: call it like the original; extra methods manage entries."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        ttl: float,
        key: KeySpec,
        tags: Sequence[str],
        stale_while_revalidate: float,
        stale_if_error: float,
        lock: bool | None,
        lock_ttl: float,
        cache: Cache | None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("cached(ttl=...) must be positive")
        self.fn = fn
        self.ttl = ttl
        self.swr = stale_while_revalidate
        self.sie = stale_if_error
        self.stale_ttl = max(stale_while_revalidate, stale_if_error)
        self.lock = lock
        self.lock_ttl = lock_ttl
        self._cache = cache
        self.make_key, self.shape = _key_builder(fn, key)
        self.make_tags = _tag_builder(fn, tags)
        self.is_async = inspect.iscoroutinefunction(fn)
        self._ainflight: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._inflight: dict[str, _Flight] = {}
        self._inflight_lock = threading.Lock()
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Origin calls made (misses, refreshes); a metric and a test hook.
        self.origin_calls = 0
        functools.update_wrapper(self, fn)

    @property
    def cache(self) -> Cache:
        return self._cache if self._cache is not None else default_cache()

    def key_for(self, *args: Any, **kwargs: Any) -> str:
        """The cache key a call with these arguments uses."""
        return self.make_key(args, kwargs)

    def _use_lock(self, cache: Cache) -> bool:
        if self.lock is not None:
            return self.lock
        # In-process single-flight already covers a process-local backend.
        return not isinstance(cache.backend, MemoryBackend)

    # -- the hand-written memory hit path ------------------------------------------------------
    def _memory_hit(self, cache: Cache, key: str) -> Any:
        """The value for ``key`` straight from a MemoryBackend's dict, or ``_NO``.

        Written out by hand rather than through Cache.lookup -> backend.get -> decode because
        this is the per-request hot path the cache exists for: skipping three calls, the lock
        and the span bookkeeping (no trace active) makes a hit ~3x cheaper. Anything unusual
        (expired, stale, foreign bytes) returns ``_NO`` and takes the general path.
        """
        backend: MemoryBackend = cache.backend  # type: ignore[assignment]
        entry = backend._data.get(key)
        if entry is None or entry[1] <= backend._clock():
            return _NO
        parts = unpack(entry[0])
        if parts is None or parts[0] != cache.serializer.tag or parts[1] <= cache.clock():
            return _NO
        try:
            value = cache.serializer.loads(parts[3])
        except SerializationError:
            return _NO  # the general path reports it and treats it as a miss
        try:
            backend._data.move_to_end(key)  # atomic C call under the GIL; LRU recency
        except KeyError:
            pass
        return value

    # -- sync ----------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.is_async:
            return self._acall(args, kwargs)
        if _bypass.get():
            return self.fn(*args, **kwargs)
        cache = self.cache
        key = self.make_key(args, kwargs)
        if type(cache.backend) is MemoryBackend and _current_trace.get() is None:
            value = self._memory_hit(cache, key)
            if value is not _NO:
                return value
        entry = cache.lookup(key, self.shape)
        stale: Lookup | None = None
        if entry is not None:
            now = cache.clock()
            if now < entry.fresh_until:
                return entry.value
            if now < entry.fresh_until + self.swr:
                self._schedule_sync_refresh(cache, key, args, kwargs)
                return entry.value
            stale = entry
        return self._sync_fill(cache, key, args, kwargs, stale)

    def _sync_fill(
        self, cache: Cache, key: str, args: Any, kwargs: Any, stale: Lookup | None
    ) -> Any:
        with self._inflight_lock:
            flight = self._inflight.get(key)
            leader = flight is None
            if flight is None:
                flight = self._inflight[key] = _Flight()
        if not leader:
            flight.event.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            flight.value = self._sync_compute(cache, key, args, kwargs, stale)
            return flight.value
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._inflight_lock:
                self._inflight.pop(key, None)
            flight.event.set()

    def _sync_compute(
        self, cache: Cache, key: str, args: Any, kwargs: Any, stale: Lookup | None
    ) -> Any:
        token: str | bool | None = False
        lock_key = "lock:" + key
        if self._use_lock(cache):
            token = cache.try_lock(lock_key, self.lock_ttl)
            if token is None:  # another process is computing: wait for its result
                deadline = time.monotonic() + self.lock_ttl
                while time.monotonic() < deadline:
                    time.sleep(0.005)
                    entry = cache.lookup(key, self.shape)
                    if entry is not None and cache.clock() < entry.fresh_until:
                        return entry.value
                token = False
            elif isinstance(token, str):
                entry = cache.lookup(key, self.shape)  # filled while we took the lock?
                if entry is not None and cache.clock() < entry.fresh_until:
                    cache.release(lock_key, token)
                    return entry.value
        try:
            try:
                self.origin_calls += 1
                value = self.fn(*args, **kwargs)
            except Exception:
                if stale is not None and cache.clock() < stale.fresh_until + self.sie:
                    return stale.value
                raise
            self._store(cache, key, value, args, kwargs)
            return value
        finally:
            if isinstance(token, str):
                cache.release(lock_key, token)

    def _store(self, cache: Cache, key: str, value: Any, args: Any, kwargs: Any) -> None:
        tags = self.make_tags(args, kwargs) if self.make_tags else ()
        try:
            cache.set(
                key, value, ttl=self.ttl, tags=tags, stale_ttl=self.stale_ttl, shape=self.shape
            )
        except Exception as exc:  # an unserializable value: serve it, report, do not cache
            report_backend_error(cache.backend_name, "encode", exc)

    def _schedule_sync_refresh(self, cache: Cache, key: str, args: Any, kwargs: Any) -> None:
        with self._inflight_lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)
        # A fresh context: the refresh outlives the request and must not record into its trace.
        ctx = contextvars.Context()
        _pool().submit(ctx.run, self._sync_refresh, cache, key, args, kwargs)

    def _sync_refresh(self, cache: Cache, key: str, args: Any, kwargs: Any) -> None:
        try:
            token = cache.try_lock("lock:" + key, self.lock_ttl) if self._use_lock(cache) else False
            if token is None:
                return  # another process is refreshing it
            try:
                self.origin_calls += 1
                value = self.fn(*args, **kwargs)
                self._store(cache, key, value, args, kwargs)
            finally:
                if isinstance(token, str):
                    cache.release("lock:" + key, token)
        except Exception as exc:
            report_backend_error(cache.backend_name, "refresh", exc)
        finally:
            with self._inflight_lock:
                self._refreshing.discard(key)

    # -- async ---------------------------------------------------------------------------------
    async def _acall(self, args: Any, kwargs: Any) -> Any:
        if _bypass.get():
            return await self.fn(*args, **kwargs)
        cache = self.cache
        key = self.make_key(args, kwargs)
        if type(cache.backend) is MemoryBackend and _current_trace.get() is None:
            value = self._memory_hit(cache, key)
            if value is not _NO:
                return value
        entry = await cache.alookup(key, self.shape)
        stale: Lookup | None = None
        if entry is not None:
            now = cache.clock()
            if now < entry.fresh_until:
                return entry.value
            if now < entry.fresh_until + self.swr:
                self._schedule_async_refresh(cache, key, args, kwargs)
                return entry.value
            stale = entry
        return await self._async_fill(cache, key, args, kwargs, stale)

    async def _async_fill(
        self, cache: Cache, key: str, args: Any, kwargs: Any, stale: Lookup | None
    ) -> Any:
        loop = asyncio.get_running_loop()
        flight = self._ainflight.get(key)
        if flight is not None and flight[0] is loop:
            try:
                return await asyncio.shield(flight[1])
            except asyncio.CancelledError:
                if not flight[1].cancelled():
                    raise  # this caller was cancelled
                # The call we joined was cancelled (its client went away): start over (another
                # waiter may have filled the entry meanwhile, or become the new leader).
                entry = await cache.alookup(key, self.shape)
                if entry is not None and cache.clock() < entry.fresh_until:
                    return entry.value
                return await self._async_fill(cache, key, args, kwargs, stale)
        future: asyncio.Future[Any] = loop.create_future()
        self._ainflight[key] = (loop, future)
        try:
            value = await self._async_compute(cache, key, args, kwargs, stale)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: no "exception never retrieved" if no waiter
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(value)
            return value
        finally:
            if self._ainflight.get(key, (None,))[0] is loop:
                del self._ainflight[key]

    async def _async_compute(
        self, cache: Cache, key: str, args: Any, kwargs: Any, stale: Lookup | None
    ) -> Any:
        token: str | bool | None = False
        lock_key = "lock:" + key
        if self._use_lock(cache):
            token = await cache.atry_lock(lock_key, self.lock_ttl)
            if token is None:
                deadline = time.monotonic() + self.lock_ttl
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
                    entry = await cache.alookup(key, self.shape)
                    if entry is not None and cache.clock() < entry.fresh_until:
                        return entry.value
                token = False
            elif isinstance(token, str):
                entry = await cache.alookup(key, self.shape)
                if entry is not None and cache.clock() < entry.fresh_until:
                    await cache.arelease(lock_key, token)
                    return entry.value
        try:
            try:
                self.origin_calls += 1
                value = await self.fn(*args, **kwargs)
            except Exception:
                if stale is not None and cache.clock() < stale.fresh_until + self.sie:
                    return stale.value
                raise
            await self._astore(cache, key, value, args, kwargs)
            return value
        finally:
            if isinstance(token, str):
                await cache.arelease(lock_key, token)

    async def _astore(self, cache: Cache, key: str, value: Any, args: Any, kwargs: Any) -> None:
        tags = self.make_tags(args, kwargs) if self.make_tags else ()
        try:
            await cache.aset(
                key, value, ttl=self.ttl, tags=tags, stale_ttl=self.stale_ttl, shape=self.shape
            )
        except Exception as exc:
            report_backend_error(cache.backend_name, "encode", exc)

    def _schedule_async_refresh(self, cache: Cache, key: str, args: Any, kwargs: Any) -> None:
        if key in self._refreshing:
            return
        self._refreshing.add(key)
        # A fresh context: the refresh outlives the request and must not record into its trace.
        task = asyncio.get_running_loop().create_task(
            self._async_refresh(cache, key, args, kwargs), context=contextvars.Context()
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _async_refresh(self, cache: Cache, key: str, args: Any, kwargs: Any) -> None:
        try:
            token = (
                await cache.atry_lock("lock:" + key, self.lock_ttl)
                if self._use_lock(cache)
                else False
            )
            if token is None:
                return
            try:
                self.origin_calls += 1
                value = await self.fn(*args, **kwargs)
                await self._astore(cache, key, value, args, kwargs)
            finally:
                if isinstance(token, str):
                    await cache.arelease("lock:" + key, token)
        except Exception as exc:
            report_backend_error(cache.backend_name, "refresh", exc)
        finally:
            self._refreshing.discard(key)

    # -- management ----------------------------------------------------------------------------
    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Delete the entry for these arguments (sync backends call)."""
        return self.cache.delete(self.make_key(args, kwargs))

    async def ainvalidate(self, *args: Any, **kwargs: Any) -> bool:
        return await self.cache.adelete(self.make_key(args, kwargs))

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Bypass the cached entry: run the origin now and store its result."""
        cache = self.cache
        key = self.make_key(args, kwargs)
        if self.is_async:

            async def run() -> Any:
                self.origin_calls += 1
                value = await self.fn(*args, **kwargs)
                await self._astore(cache, key, value, args, kwargs)
                return value

            return run()
        self.origin_calls += 1
        value = self.fn(*args, **kwargs)
        self._store(cache, key, value, args, kwargs)
        return value

    async def wait_refreshes(self) -> None:
        """Wait for background refreshes started on this loop (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


_NO: Any = object()


def cached(
    ttl: float,
    *,
    key: KeySpec = None,
    tags: Sequence[str] = (),
    stale_while_revalidate: float = 0.0,
    stale_if_error: float = 0.0,
    lock: bool | None = None,
    lock_ttl: float = 10.0,
    cache: Cache | None = None,
) -> Callable[[Callable[..., Any]], Any]:
    """Cache a function's results for ``ttl`` seconds; works on sync and async functions.

    ``key`` is a template over the parameters (``"user:{user_id}"``), a callable taking the
    same arguments, or None (module, name and the arguments' ``repr``). ``tags`` are templates
    too; ``cache.invalidate_tags("user:42")`` drops every entry tagged so. Spans record the key's
    shape (the template or the function name), never argument values::

        @cached(ttl=30, key="user:{user_id}", tags=["user:{user_id}"], stale_while_revalidate=60)
        async def load_user(user_id: int) -> dict: ...

    ``lock`` (default: on for shared backends) takes a Redis lock around each origin call so
    that one process computes a missing key while the others wait for its result.
    """

    def decorate(fn: Callable[..., Any]) -> Any:
        cf = CachedFunction(
            fn,
            ttl=ttl,
            key=key,
            tags=tags,
            stale_while_revalidate=stale_while_revalidate,
            stale_if_error=stale_if_error,
            lock=lock,
            lock_ttl=lock_ttl,
            cache=cache,
        )
        if not cf.is_async:
            return cf
        # An async function must stay one to inspect.iscoroutinefunction (FastAPI, Starlette
        # and Django decide how to call a callable by asking), so wrap it in a real coroutine
        # function carrying the same management methods.
        acall = cf._acall

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await acall(args, kwargs)

        for name in _EXPOSED:
            setattr(wrapper, name, getattr(cf, name))
        wrapper.cached_function = cf  # type: ignore[attr-defined]
        return wrapper

    return decorate


_EXPOSED = ("invalidate", "ainvalidate", "refresh", "key_for", "wait_refreshes")

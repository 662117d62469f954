"""Pieces shared by the database integrations (sqlite3, SQLAlchemy, psycopg, asyncpg).

Kept apart from the integrations so each of those stays a thin layer of wrappers: patching
and restoring attributes exactly, the attributes every ``db`` span carries, the "opened during
this request" bookkeeping for connections, and reading a row count out of a command status.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Callable
from time import perf_counter_ns as _now
from typing import Any, TypeVar

import lagless._runtime as _runtime_mod
from lagless._runtime import get_runtime
from lagless._spans import (
    _SALT,
    _get_running_loop,
    _suppress_db,
    on_event_loop,
    params_fingerprint,
    record,
)
from lagless._trace import Span, Trace, _current_trace

_MISSING = object()

# Largest executemany batch whose parameters are fingerprinted (and kept under record_params).
_MAX_MANY = 100


class Patches:
    """Attributes replaced on library objects, and how to put each one back exactly.

    An attribute the owner only inherited is deleted on restore (so lookup falls back to the
    base class again) rather than copied down onto the subclass.
    """

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def patch(self, owner: Any, name: str, replacement: Any) -> Any:
        """Set ``owner.name = replacement``; return what attribute lookup found before."""
        own = vars(owner).get(name, _MISSING)
        previous = getattr(owner, name)
        self._saved.append((owner, name, own))
        setattr(owner, name, replacement)
        return previous

    def restore(self) -> None:
        while self._saved:
            owner, name, own = self._saved.pop()
            if own is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, own)


# Connections opened while a trace was active, until their first statement runs: that
# statement's span gets ``new_connection=True``. Keyed by ``id`` with a weak reference to tell
# a reused id apart, because a plain dict's truth test is the cheapest "anything pending?"
# check on the per-statement path (a WeakKeyDictionary's ``len`` is a Python-level call).
_fresh: dict[int, tuple[weakref.ref[Any], Trace]] = {}


def mark_new_connection(conn: Any, trace: Trace) -> None:
    key = id(conn)

    def forget(ref: weakref.ref[Any]) -> None:
        entry = _fresh.get(key)
        if entry is not None and entry[0] is ref:
            _fresh.pop(key, None)

    try:
        _fresh[key] = (weakref.ref(conn, forget), trace)
    except TypeError:  # not weak-referenceable: the fact is just not recorded
        pass


def take_new_connection(conn: Any, trace: Trace) -> bool:
    """True (once) if ``conn`` was opened during ``trace``."""
    if not _fresh:
        return False
    entry = _fresh.pop(id(conn), None)
    if entry is None:
        return False
    ref, opened_in = entry
    return ref() is conn and opened_in is trace


def record_params() -> bool:
    """Whether spans keep bound parameters (the ``record_params`` setting).

    Read per statement, so it reads the runtime's cached flag (set by ``Runtime._apply``)
    through the module global: ~30 ns, where ``get_runtime().config.values.get(...)`` cost
    ~55 ns and ``config.record_params`` (``Config.__getattr__``) a microsecond.
    """
    rt = _runtime_mod._runtime
    return (rt if rt is not None else get_runtime()).record_params


def add_params(attrs: dict[str, Any], params: Any, many: bool = False) -> None:
    """``params_hash`` always, ``params`` themselves only under ``record_params``."""
    # An executemany over a generator or a huge batch is not walked: reading it would consume
    # or copy the caller's data.
    if many and not (isinstance(params, list | tuple) and len(params) <= _MAX_MANY):
        return
    # Runs per statement with parameters: the usual hashable tuple is fingerprinted and the
    # setting read inline (two calls fewer, ~0.1-0.2 µs a statement); the rest as before.
    try:
        attrs["params_hash"] = hash((_SALT, params))
    except TypeError:
        attrs["params_hash"] = params_fingerprint(params)
    rt = _runtime_mod._runtime
    if (rt if rt is not None else get_runtime()).record_params:
        attrs["params"] = params


def db_attrs(
    driver: str,
    system: str | None,
    params: Any,
    *,
    many: bool = False,
    sync: bool = False,
    new_connection: bool = False,
) -> dict[str, Any]:
    """The attributes of a ``db`` span. Parameters are kept only under ``record_params``;
    otherwise only their fingerprint is, so duplicates can still be told from N+1s."""
    attrs: dict[str, Any] = {"driver": driver, "db.system": system}
    if params:
        add_params(attrs, params, many)
    if many:
        attrs["many"] = True
    if new_connection:
        attrs["new_connection"] = True
    # A synchronous driver call on a thread running an event loop blocks every task on it.
    if sync and on_event_loop():
        attrs["on_loop"] = True
    return attrs


def statement_attrs(
    driver: str, system: str, trace: Trace, conn: Any, params: Any, many: bool, sync: bool
) -> dict[str, Any]:
    """:func:`db_attrs` for the drivers' per-statement path (sqlite3, psycopg, asyncpg):
    positional arguments, and ``new_connection`` worked out from ``conn`` here. One call a
    statement, where ``db_attrs``'s keyword call cost ~1 µs more. A single statement's
    parameters are fingerprinted here inline (:func:`add_params` is a second call a
    statement), the way ``add_params`` does it."""
    attrs: dict[str, Any] = {"driver": driver, "db.system": system}
    if params:
        if many:
            add_params(attrs, params, True)
        else:
            try:
                attrs["params_hash"] = hash((_SALT, params))
            except TypeError:
                attrs["params_hash"] = params_fingerprint(params)
            rt = _runtime_mod._runtime
            if (rt if rt is not None else get_runtime()).record_params:
                attrs["params"] = params
    if many:
        attrs["many"] = True
    if _fresh and take_new_connection(conn, trace):
        attrs["new_connection"] = True
    # A synchronous driver call on a thread running an event loop blocks every task on it.
    if sync and _get_running_loop() is not None:
        attrs["on_loop"] = True
    return attrs


def record_connect(
    trace: Trace,
    driver: str,
    system: str | None,
    start_ns: int,
    *,
    error: BaseException | None = None,
    sync: bool = False,
) -> Span | None:
    """A ``pool`` span named ``connect`` for a new physical connection."""
    attrs: dict[str, Any] = {"driver": driver, "db.system": system, "new_connection": True}
    if sync and on_event_loop():
        attrs["on_loop"] = True
    return record(trace, "pool", "connect", start_ns, error=error, **attrs)


def record_wait(
    trace: Trace,
    name: str,
    driver: str,
    start_ns: int,
    *,
    system: str | None = None,
    error: BaseException | None = None,
) -> Span | None:
    """A ``pool`` span for waiting on a pool for a connection; ``wait_ms`` is its length."""
    end = _now()
    return record(
        trace,
        "pool",
        name,
        start_ns,
        end,
        error=error,
        driver=driver,
        wait_ms=(end - start_ns) / 1_000_000,
        **({"db.system": system} if system else {}),
    )


def wrap_pool_wait(
    original: Callable[..., Any], name: str, driver: str, system: str, *, is_async: bool
) -> Callable[..., Any]:
    """Wrap a pool's "give me a connection" method (psycopg_pool ``getconn``, asyncpg
    ``Pool._acquire``) so the wait becomes a ``pool`` span (:func:`record_wait`). The wrapper
    keeps the original's ``__wrapped__``, docstring and name, and is a coroutine function
    when the original is."""

    async def traced(trace: Trace, self: Any, args: Any, kwargs: Any) -> Any:
        start = _now()
        try:
            conn = await original(self, *args, **kwargs)
        except BaseException as exc:
            record_wait(trace, name, driver, start, system=system, error=exc)
            raise
        record_wait(trace, name, driver, start, system=system)
        return conn

    def wait(self: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _suppress_db.get():
            return original(self, *args, **kwargs)
        if is_async:
            return traced(trace, self, args, kwargs)
        start = _now()
        try:
            conn = original(self, *args, **kwargs)
        except BaseException as exc:
            record_wait(trace, name, driver, start, system=system, error=exc)
            raise
        record_wait(trace, name, driver, start, system=system)
        return conn

    wait.__wrapped__ = original  # type: ignore[attr-defined]
    wait.__doc__ = original.__doc__
    wait.__name__ = original.__name__
    return mark_coroutine_function(wait) if is_async else wait


F = TypeVar("F", bound=Callable[..., Any])


def mark_coroutine_function(fn: F) -> F:
    """Flag a plain function that returns a coroutine as a coroutine function, so code that
    checks (``inspect``/``asyncio.iscoroutinefunction``) treats the wrapper like the original."""
    marker = getattr(inspect, "markcoroutinefunction", None)
    if marker is not None:  # Python >= 3.12
        return marker(fn)  # type: ignore[no-any-return]
    fn._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    return fn


def rows_from_status(status: Any) -> int | None:
    """Rows affected or returned, from a PostgreSQL command tag (``INSERT 0 3``,
    ``UPDATE 2``, ``SELECT 5``): its last word, when that is a number."""
    if isinstance(status, bytes):
        status = status.decode("ascii", "replace")
    if not isinstance(status, str):
        return None
    _, _, last = status.rpartition(" ")
    return int(last) if last.isdigit() else None


def statement_text(query: Any, render: Callable[[Any], str] | None = None) -> str:
    """The statement as text: ``str`` as is, ``bytes`` decoded, anything else through
    ``render`` (psycopg's composed SQL objects) or ``str``."""
    if isinstance(query, str):
        return query
    if isinstance(query, bytes):
        return query.decode("utf-8", "replace")
    if render is not None:
        try:
            return render(query)
        except Exception:
            pass
    return str(query)

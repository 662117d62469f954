"""Recording spans: the public ``span`` API and the helpers every integration uses.

Integrations follow one shape, so the fast path (no trace active) costs one context-variable
read::

    trace = _current_trace.get()
    if trace is None:
        return original(*args, **kwargs)
    start = perf_counter_ns()
    try:
        result = original(*args, **kwargs)
    except BaseException as exc:
        record(trace, "db", sql, start, error=exc)
        raise
    record(trace, "db", sql, start, rows=...)
    return result

:func:`record` never raises: lagless's bookkeeping must not change a result or an exception.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from time import perf_counter_ns as _now
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from lagless._guard import report_internal_error
from lagless._runtime import get_runtime
from lagless._sql import redact
from lagless._trace import Span, Trace, _current_trace

P = ParamSpec("P")
R = TypeVar("R")

# Set while a higher-level integration (SQLAlchemy, Django ORM) records a statement, so the
# driver underneath (sqlite3, psycopg, asyncpg) does not record the same statement twice. A
# context variable, not a trace field, because concurrent tasks of one request each have their own.
_suppress_db: ContextVar[bool] = ContextVar("lagless_suppress_db", default=False)

_get_running_loop = asyncio._get_running_loop

_SALT = int.from_bytes(os.urandom(8), "little")


def on_event_loop() -> bool:
    """True when called on a thread whose asyncio event loop is running (a sync call there
    blocks every other request). ``asyncio._get_running_loop`` is the C-level check, ~30 ns."""
    return _get_running_loop() is not None


def params_fingerprint(params: Any) -> int | None:
    """A process-local fingerprint of bound parameters, so "same statement with the same
    parameters" (a duplicate) can be told from "same statement, other parameters" (an N+1)
    without storing the values.

    Hashable parameters (the usual tuple) are hashed together with a random per-process salt
    (~0.1 µs); others (lists, dicts) through ``repr``, whose hash is keyed by the process's
    random hash seed (~0.4 µs). Either way the value is meaningless outside the process and the
    parameters cannot be read back from it."""
    if params is None:
        return None
    try:
        return hash((_SALT, params))
    except TypeError:
        pass
    try:
        return hash((_SALT, repr(params)))
    except Exception:
        return None


def error_text(exc: BaseException) -> str:
    """``"ExceptionType: message"`` (the message cut to 300 characters) for a span or trace.

    Never raises: it runs inside ``except`` blocks around the user's call, where an exception
    of its own (a user exception whose ``__str__`` fails) would replace the user's exception.
    """
    try:
        text = str(exc)
    except Exception:
        text = "<unprintable>"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def db_error_text(exc: BaseException) -> str:
    """:func:`error_text` for a failed statement, with the values it may quote taken out
    unless ``record_params`` is on.

    Database errors repeat the parameters they fail on: PostgreSQL's ``DETAIL:  Key
    (email)=(alice@example.com) already exists`` on the lines after the message, MySQL's
    ``Duplicate entry 'alice@example.com'`` in it. Only the first line is kept, with its
    string and number literals redacted; identifiers (``"users_email_key"``) stay. Runs only
    when a statement failed.
    """
    text = error_text(exc)
    if get_runtime().config.values.get("record_params", False):
        return text
    return redact(text.split("\n", 1)[0]).rstrip()


def record(
    trace: Trace,
    kind: str,
    name: str,
    start_ns: int,
    end_ns: int | None = None,
    *,
    error: BaseException | None = None,
    **attrs: Any,
) -> Span | None:
    """Append a span ending now (or at ``end_ns``). Never raises; returns ``None`` on failure."""
    try:
        end = _now() if end_ns is None else end_ns
        if error is not None:
            attrs["error"] = db_error_text(error) if kind == "db" else error_text(error)
        return trace.add_span(kind, name, start_ns, end, attrs or None)
    except Exception as exc:
        report_internal_error(f"record:{kind}", exc)
        return None


class _SpanScope:
    """What :func:`span` returns: a context manager (sync and async) and a decorator."""

    __slots__ = ("_start", "_trace", "attrs", "kind", "name", "span")

    def __init__(self, name: str, kind: str, attrs: dict[str, Any]) -> None:
        self.name = name
        self.kind = kind
        self.attrs = attrs
        self._trace: Trace | None = None
        self._start = 0  # set by _enter when a trace is active
        self.span: Span | None = None

    # Hand-optimised: outside a request a scope only reads the context variable (no clock
    # read); inside one the span is added directly, its attrs copied once (``record(**attrs)``
    # copied them twice). ``with span()``: ~1.2 -> ~0.8 µs with a trace, ~0.5 -> ~0.35 µs
    # without (bench/overhead.py, loaded machine).

    def _enter(self) -> _SpanScope:
        trace = self._trace = _current_trace.get()
        if trace is not None:
            self._start = _now()
        return self

    def _exit(self, exc: BaseException | None) -> None:
        trace = self._trace
        if trace is None:
            return
        end = _now()
        try:
            attrs = self.attrs
            if exc is not None:
                attrs = {**attrs, "error": error_text(exc)}
            elif attrs:
                attrs = dict(attrs)
            self.span = trace.add_span(self.kind, self.name, self._start, end, attrs or None)
        except Exception as internal:
            report_internal_error(f"record:{self.kind}", internal)

    def __enter__(self) -> _SpanScope:
        return self._enter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc)

    async def __aenter__(self) -> _SpanScope:
        return self._enter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Use as a decorator: each call of ``fn`` (sync or async) becomes a span."""
        name, kind, attrs = self.name, self.kind, self.attrs
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with _SpanScope(name, kind, attrs):
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with _SpanScope(name, kind, attrs):
                return fn(*args, **kwargs)

        return wrapper


@overload
def span(name: str, /, *, kind: str = "custom", **attrs: Any) -> _SpanScope: ...
@overload
def span(name: Callable[P, R], /) -> Callable[P, R]: ...


def span(name: Any, /, *, kind: str = "custom", **attrs: Any) -> Any:
    """Time a block or a function as a span of the current request.

    Use it where lagless cannot see on its own: a slow computation, a call into an SDK it does
    not instrument. Outside a request it does nothing but run the code.

    As a context manager (sync or async)::

        with lagless.span("render-invoice", kind="serialize"):
            pdf = render(invoice)

    As a decorator, on sync or async functions (the name defaults to the function's)::

        @lagless.span("pricing.quote")
        async def quote(cart): ...

        @lagless.span
        def expensive(): ...
    """
    if type(name) is str:  # the usual case first: one type check instead of callable()+str()
        return _SpanScope(name, kind, attrs)
    if callable(name):
        fn = name
        return _SpanScope(getattr(fn, "__qualname__", repr(fn)), kind, attrs)(fn)
    return _SpanScope(str(name), kind, attrs)


@contextmanager
def suppress_driver_spans() -> Iterator[None]:
    """Stop driver-level integrations recording inside this block (the ORM records instead)."""
    token = _suppress_db.set(True)
    try:
        yield
    finally:
        _suppress_db.reset(token)

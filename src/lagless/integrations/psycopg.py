"""Capture of psycopg 3 (sync and async) and of psycopg_pool's connection acquisition.

psycopg has no execution hooks (its ``notice``/``notify`` handlers see server messages, not
queries), so the narrowest methods are wrapped: ``execute``/``executemany``/``stream``/``copy``
of :class:`psycopg.Cursor` and :class:`psycopg.AsyncCursor` (``Connection.execute`` and the
client-side and raw cursor classes inherit them), ``execute`` of the server-side cursors,
``Connection.connect``/``AsyncConnection.connect`` (new physical connections), and ``getconn``
of ``ConnectionPool``/``AsyncConnectionPool`` (which their ``connection()`` context managers
call), recorded as the time spent waiting for a pooled connection.

Async methods are wrapped by plain functions that hand back the original coroutine untouched
when no trace is active, so an untraced query pays no extra coroutine frame.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter_ns as _now
from typing import Any, ClassVar

from lagless._guard import report_internal_error
from lagless._spans import _suppress_db, db_error_text
from lagless._trace import Span, Trace, _current_trace
from lagless.integrations._base import Integration
from lagless.integrations._db import (
    Patches,
    _fresh,
    mark_coroutine_function,
    mark_new_connection,
    record_connect,
    statement_attrs,
    statement_text,
    wrap_pool_wait,
)

DRIVER = "psycopg"
SYSTEM = "postgresql"
GETCONN = "psycopg_pool.getconn"


def _text(cursor: Any, query: Any) -> str:
    # ``sql.SQL``/``sql.Composed`` objects are rendered the way psycopg sends them.
    return statement_text(query, lambda q: q.as_string(cursor.connection))


def _statement(
    cursor: Any,
    trace: Trace,
    query: Any,
    start: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    key: str,
    sync: bool,
    error: BaseException | None,
) -> None:
    """Append the ``db`` span for ``execute(query, *args, **kwargs)``; ``key`` names the
    parameters argument (``params_seq`` for executemany)."""
    end = _now()
    try:
        many = key == "params_seq"
        params = args[0] if args else kwargs.get(key)
        # ``cursor.connection`` is a Python property: read only when a connection opened
        # during a request awaits its first statement (``new_connection``).
        conn = cursor.connection if _fresh else None
        attrs = statement_attrs(DRIVER, SYSTEM, trace, conn, params, many, sync)
        if error is None:
            # ``rowcount`` is a Python property returning ``_rowcount``: the slot is read
            # directly where it exists (psycopg 3.1-3.3), the property otherwise.
            rowcount = getattr(cursor, "_rowcount", None)
            if rowcount is None:
                rowcount = cursor.rowcount
            if rowcount >= 0:
                attrs["rows"] = rowcount
        else:
            attrs["error"] = db_error_text(error)
        name = query if type(query) is str else _text(cursor, query)
        # ``Trace.add_span`` inlined: a method call fewer a statement.
        spans = trace.spans
        if len(spans) < trace.max_spans:
            spans.append(Span("db", name, start, end - start, attrs))
        else:
            trace.attrs["dropped_spans"] = trace.attrs.get("dropped_spans", 0) + 1
    except Exception as exc:
        report_internal_error("psycopg:record", exc)


def _wrap_sync(original: Callable[..., Any], many: bool) -> Callable[..., Any]:
    key = "params_seq" if many else "params"

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _suppress_db.get():
            return original(self, query, *args, **kwargs)
        start = _now()
        try:
            result = original(self, query, *args, **kwargs)
        except BaseException as exc:
            _statement(self, trace, query, start, args, kwargs, key, True, exc)
            raise
        _statement(self, trace, query, start, args, kwargs, key, True, None)
        return result

    execute.__wrapped__ = original  # type: ignore[attr-defined]
    execute.__doc__ = original.__doc__
    return execute


def _wrap_async(original: Callable[..., Any], many: bool) -> Callable[..., Any]:
    key = "params_seq" if many else "params"

    async def traced(trace: Trace, self: Any, query: Any, args: Any, kwargs: Any) -> Any:
        start = _now()
        try:
            result = await original(self, query, *args, **kwargs)
        except BaseException as exc:
            _statement(self, trace, query, start, args, kwargs, key, False, exc)
            raise
        _statement(self, trace, query, start, args, kwargs, key, False, None)
        return result

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _suppress_db.get():
            return original(self, query, *args, **kwargs)
        return traced(trace, self, query, args, kwargs)

    execute.__wrapped__ = original  # type: ignore[attr-defined]
    execute.__doc__ = original.__doc__
    return mark_coroutine_function(execute)


def _whole_span(
    cursor: Any,
    trace: Trace,
    query: Any,
    params: Any,
    start: int,
    end: int,
    sync: bool,
    error: BaseException | None,
    rows: int | None,
    flag: str,
) -> None:
    """The one ``db`` span of an operation that spans several driver calls, a ``stream()`` or
    a ``copy()``, marked with ``flag`` (``stream`` / ``copy``); ``rows`` when known."""
    try:
        conn = cursor.connection if _fresh else None
        attrs = statement_attrs(DRIVER, SYSTEM, trace, conn, params, False, sync)
        attrs[flag] = True
        if rows is not None and rows >= 0:
            attrs["rows"] = rows
        if error is not None:
            attrs["error"] = db_error_text(error)
        name = query if type(query) is str else _text(cursor, query)
        trace.add_span("db", name, start, end, attrs)
    except Exception as exc:
        report_internal_error("psycopg:record", exc)


def _traced_stream(trace: Trace, cursor: Any, query: Any, params: Any, rows_iter: Any) -> Any:
    """``rows_iter`` (psycopg's own ``stream`` generator, which sends the query on the first
    ``next``) with its rows counted and the time inside it summed into one span."""
    first = busy = rows = 0
    error: BaseException | None = None
    try:
        while True:
            start = _now()
            if not first:
                first = start
            try:
                row = next(rows_iter)
            except StopIteration:
                busy += _now() - start
                return
            busy += _now() - start
            rows += 1
            yield row
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            error = exc
        raise
    finally:
        if first:  # from the query's sending, for the time spent in the driver only
            _whole_span(
                cursor, trace, query, params, first, first + busy, True, error, rows, "stream"
            )
        rows_iter.close()


async def _traced_astream(
    trace: Trace, cursor: Any, query: Any, params: Any, rows_iter: Any
) -> Any:
    """:func:`_traced_stream` for ``AsyncCursor.stream`` (an async generator)."""
    first = busy = rows = 0
    error: BaseException | None = None
    try:
        while True:
            start = _now()
            if not first:
                first = start
            try:
                row = await rows_iter.__anext__()
            except StopAsyncIteration:
                busy += _now() - start
                return
            busy += _now() - start
            rows += 1
            yield row
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            error = exc
        raise
    finally:
        if first:
            _whole_span(
                cursor, trace, query, params, first, first + busy, False, error, rows, "stream"
            )
        await rows_iter.aclose()


def _wrap_stream(original: Callable[..., Any], traced: Callable[..., Any]) -> Callable[..., Any]:
    """``Cursor.stream``/``AsyncCursor.stream``: psycopg's own generator, handed to ``traced``
    (:func:`_traced_stream` or :func:`_traced_astream`) while a trace is active."""

    def stream(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _suppress_db.get():
            return original(self, query, params, **kwargs)
        return traced(trace, self, query, params, original(self, query, params, **kwargs))

    stream.__wrapped__ = original  # type: ignore[attr-defined]
    stream.__doc__ = original.__doc__
    return stream


class _TracedCopy:
    """What a traced ``cursor.copy(...)`` returns (its sync or async subclass): psycopg's own
    context manager, with one ``db`` span (``copy=True``) from entering it to leaving it, the
    whole COPY: the statement and the data the block writes or reads."""

    __slots__ = ("_cm", "_cursor", "_params", "_start", "_statement", "_trace")

    def __init__(self, trace: Trace, cursor: Any, statement: Any, params: Any, cm: Any) -> None:
        self._trace = trace
        self._cursor = cursor
        self._statement = statement
        self._params = params
        self._cm = cm
        self._start = 0

    def _record(self, error: BaseException | None, sync: bool) -> None:
        cursor = self._cursor
        rows = None if error is not None else getattr(cursor, "rowcount", None)
        query, params = self._statement, self._params
        _whole_span(
            cursor, self._trace, query, params, self._start, _now(), sync, error, rows, "copy"
        )


class _TracedSyncCopy(_TracedCopy):
    """A sync cursor's COPY: only the ``with`` protocol, so misuse fails as psycopg's does."""

    __slots__ = ()

    def __enter__(self) -> Any:
        self._start = _now()
        try:
            return self._cm.__enter__()
        except BaseException as exc:
            self._record(exc, True)
            raise

    def __exit__(self, *exc_info: Any) -> Any:
        error: BaseException | None = exc_info[1]
        try:
            return self._cm.__exit__(*exc_info)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._record(error, True)


class _TracedAsyncCopy(_TracedCopy):
    """An async cursor's COPY: only the ``async with`` protocol."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        self._start = _now()
        try:
            return await self._cm.__aenter__()
        except BaseException as exc:
            self._record(exc, False)
            raise

    async def __aexit__(self, *exc_info: Any) -> Any:
        error: BaseException | None = exc_info[1]
        try:
            return await self._cm.__aexit__(*exc_info)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._record(error, False)


def _wrap_copy(original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    """``Cursor.copy``/``AsyncCursor.copy``: a context manager factory."""
    traced = _TracedAsyncCopy if is_async else _TracedSyncCopy

    def copy(self: Any, statement: Any, params: Any = None, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        cm = original(self, statement, params, **kwargs)
        if trace is None or _suppress_db.get():
            return cm
        return traced(trace, self, statement, params, cm)

    copy.__wrapped__ = original  # type: ignore[attr-defined]
    copy.__doc__ = original.__doc__
    return copy


def _wrap_connect(original: Callable[..., Any], is_async: bool) -> Any:
    """``Connection.connect`` is a classmethod; ``original`` is its function."""

    async def traced(trace: Trace, cls: Any, args: Any, kwargs: Any) -> Any:
        start = _now()
        try:
            conn = await original(cls, *args, **kwargs)
        except BaseException as exc:
            record_connect(trace, DRIVER, SYSTEM, start, error=exc)
            raise
        record_connect(trace, DRIVER, SYSTEM, start)
        mark_new_connection(conn, trace)
        return conn

    def connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _suppress_db.get():
            return original(cls, *args, **kwargs)
        if is_async:
            return traced(trace, cls, args, kwargs)
        start = _now()
        try:
            conn = original(cls, *args, **kwargs)
        except BaseException as exc:
            record_connect(trace, DRIVER, SYSTEM, start, error=exc, sync=True)
            raise
        record_connect(trace, DRIVER, SYSTEM, start, sync=True)
        mark_new_connection(conn, trace)
        return conn

    connect.__wrapped__ = original  # type: ignore[attr-defined]
    connect.__doc__ = original.__doc__
    if is_async:
        mark_coroutine_function(connect)
    return classmethod(connect)


class PsycopgIntegration(Integration):
    """Records psycopg 3 statements, new connections and psycopg_pool waits."""

    name: ClassVar[str] = "psycopg"
    module: ClassVar[str] = "psycopg"
    distribution: ClassVar[str | None] = "psycopg"

    def __init__(self) -> None:
        super().__init__()
        self._patches = Patches()

    def _install(self) -> None:
        import psycopg

        patch = self._patches.patch
        try:
            for cls, is_async in ((psycopg.Cursor, False), (psycopg.AsyncCursor, True)):
                wrap = _wrap_async if is_async else _wrap_sync
                patch(cls, "execute", wrap(vars(cls)["execute"], False))
                patch(cls, "executemany", wrap(vars(cls)["executemany"], True))
                traced = _traced_astream if is_async else _traced_stream
                patch(cls, "stream", _wrap_stream(vars(cls)["stream"], traced))
                patch(cls, "copy", _wrap_copy(vars(cls)["copy"], is_async))
            server_cursors: tuple[tuple[type, bool], ...] = (
                (psycopg.ServerCursor, False),
                (psycopg.AsyncServerCursor, True),
            )
            for server_cls, is_async in server_cursors:
                wrap = _wrap_async if is_async else _wrap_sync
                patch(server_cls, "execute", wrap(vars(server_cls)["execute"], False))
            for conn_cls, is_async in (
                (psycopg.Connection, False),
                (psycopg.AsyncConnection, True),
            ):
                original = vars(conn_cls)["connect"].__func__
                patch(conn_cls, "connect", _wrap_connect(original, is_async))
            # ``psycopg.connect`` is ``Connection.connect`` bound once at import.
            patch(psycopg, "connect", psycopg.Connection.connect)
            self._install_pool()
        except BaseException:
            self._patches.restore()
            raise

    def _install_pool(self) -> None:
        try:
            import psycopg_pool
        except ImportError:
            return
        for cls, is_async in (
            (psycopg_pool.ConnectionPool, False),
            (psycopg_pool.AsyncConnectionPool, True),
        ):
            self._patches.patch(
                cls,
                "getconn",
                wrap_pool_wait(vars(cls)["getconn"], GETCONN, DRIVER, SYSTEM, is_async=is_async),
            )

    def _uninstall(self) -> None:
        self._patches.restore()

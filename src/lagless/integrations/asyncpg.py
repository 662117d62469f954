"""Capture of asyncpg: statements, new connections and pool acquisition waits.

asyncpg's only hook, ``Connection.add_query_logger``, is registered per connection, reports
after the fact through ``loop.call_soon`` (so a span could land after its request finished),
and misses prepared statements and cursors; so the narrowest internal methods are wrapped
instead. There is no single one that every public query path goes through:

- ``Connection._execute``: ``fetch``, ``fetchrow``, ``fetchval`` and ``execute`` with arguments;
- ``Connection._executemany``: ``executemany`` and ``fetchmany``;
- ``Connection.execute``, only for its argument-less path (the simple-query protocol, which
  may run several statements); with arguments it defers to ``_execute``;
- ``PreparedStatement.__do_execute``: every query method of a prepared statement (the path
  SQLAlchemy's asyncpg dialect uses);
- ``BaseCursor._bind_exec``/``_exec``: each round trip of a cursor fetching rows;
- ``connect_utils._connect``: every new connection, direct or made by a pool;
- ``Pool._acquire``: both ``await pool.acquire()`` and ``async with pool.acquire()``;
- ``Connection._copy_out``/``_copy_in`` and ``copy_records_to_table``: the COPY methods, one
  ``db`` span (``copy=True``) each;
- ``Connection.reset``: the pool's clean-up on release, one ``pool`` span whose own
  statements are not recorded as the application's.

Each wrapper is a plain function that returns the original coroutine untouched when no trace
is active (no extra coroutine frame), and otherwise a coroutine that times it.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter_ns as _now
from typing import Any, ClassVar

from lagless._guard import report_internal_error
from lagless._spans import _suppress_db, db_error_text, record
from lagless._trace import Span, Trace, _current_trace
from lagless.integrations._base import Integration
from lagless.integrations._db import (
    Patches,
    mark_coroutine_function,
    mark_new_connection,
    record_connect,
    rows_from_status,
    statement_attrs,
    wrap_pool_wait,
)

DRIVER = "asyncpg"
SYSTEM = "postgresql"
ACQUIRE = "asyncpg.pool.acquire"
RESET = "asyncpg.connection.reset"


def _rows(result: Any) -> int | None:
    """Rows from what asyncpg's protocol returned: a list of records, or
    ``(records, status, completed)`` when the status was asked for (``execute`` with args)."""
    if type(result) is list:
        return len(result)
    if isinstance(result, tuple) and len(result) == 3:
        data, status, _ = result
        rows = rows_from_status(status)
        if rows is None and isinstance(data, list):
            return len(data)
        return rows
    return None


def _statement(
    trace: Trace,
    query: Any,
    start: int,
    conn: Any,
    params: Any,
    many: bool,
    result: Any,
    rows_of: Callable[[Any], int | None],
    error: BaseException | None,
    copy: bool = False,
) -> None:
    """Append the ``db`` span (the error path, and prepared statements)."""
    end = _now()
    try:
        rows = None if error is not None else rows_of(result)
        attrs = statement_attrs(DRIVER, SYSTEM, trace, conn, params, many, False)
        if rows is not None:
            attrs["rows"] = rows
        if copy:
            attrs["copy"] = True
        if error is not None:
            attrs["error"] = db_error_text(error)
        trace.add_span("db", query if type(query) is str else str(query), start, end, attrs)
    except Exception as exc:
        report_internal_error("asyncpg:record", exc)


async def _run(
    trace: Trace,
    coro: Any,
    conn: Any,
    query: Any,
    params: Any,
    many: bool,
    rows_of: Callable[[Any], int | None] = _rows,
    copy: bool = False,
) -> Any:
    start = _now()
    try:
        result = await coro
    except BaseException as exc:
        _statement(trace, query, start, conn, params, many, None, rows_of, exc, copy)
        raise
    end = _now()
    # ``_statement`` and ``Trace.add_span`` inlined on the success path, which every traced
    # query takes: a nine-argument call and a method call fewer (~0.3 µs of the ~1.4 µs a
    # traced query added; bench/overhead.py drivers section).
    try:
        attrs = statement_attrs(DRIVER, SYSTEM, trace, conn, params, many, False)
        rows = rows_of(result)
        if rows is not None:
            attrs["rows"] = rows
        if copy:
            attrs["copy"] = True
        spans = trace.spans
        if len(spans) < trace.max_spans:
            name = query if type(query) is str else str(query)
            spans.append(Span("db", name, start, end - start, attrs))
        else:
            trace.attrs["dropped_spans"] = trace.attrs.get("dropped_spans", 0) + 1
    except Exception as exc:
        report_internal_error("asyncpg:record", exc)
    return result


async def _run_prepared(trace: Trace, coro: Any, stmt: Any) -> Any:
    start = _now()
    try:
        result = await coro
    except BaseException as exc:
        _statement(trace, stmt._query, start, stmt._connection, None, False, None, _rows, exc)
        raise
    # ``fetchmany``/``executemany`` return a list or None, the others a status triple.
    many = type(result) is not tuple
    _statement(trace, stmt._query, start, stmt._connection, None, many, result, _rows, None)
    return result


def _finish(fn: Callable[..., Any], original: Callable[..., Any]) -> Callable[..., Any]:
    fn.__wrapped__ = original  # type: ignore[attr-defined]
    fn.__doc__ = original.__doc__
    fn.__name__ = original.__name__
    return mark_coroutine_function(fn)


def _wrap_execute_args(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Connection._execute(query, args, limit, timeout, ...)``."""

    def _execute(self: Any, query: Any, args: Any, *rest: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _suppress_db.get():
            return original(self, query, args, *rest, **kwargs)
        coro = original(self, query, args, *rest, **kwargs)
        return _run(trace, coro, self, query, args, False)

    return _finish(_execute, original)


def _wrap_executemany(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Connection._executemany(query, args, timeout, ...)``."""

    def _executemany(self: Any, query: Any, args: Any, *rest: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _suppress_db.get():
            return original(self, query, args, *rest, **kwargs)
        coro = original(self, query, args, *rest, **kwargs)
        return _run(trace, coro, self, query, args, True)

    return _finish(_executemany, original)


def _wrap_simple_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Connection.execute(query, *args)``: only the argument-less path is recorded here."""

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or args or _suppress_db.get():
            return original(self, query, *args, **kwargs)
        coro = original(self, query, *args, **kwargs)
        return _run(trace, coro, self, query, None, False, rows_from_status)

    return _finish(execute, original)


def _wrap_prepared(original: Callable[..., Any]) -> Callable[..., Any]:
    """``PreparedStatement.__do_execute(executor)``: the statement object knows its query;
    ``fetchmany``/``executemany`` return a list or ``None``, the rest a status triple."""

    def do_execute(self: Any, executor: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _suppress_db.get():
            return original(self, executor)
        coro = original(self, executor)
        return _run_prepared(trace, coro, self)

    return _finish(do_execute, original)


def _wrap_cursor(original: Callable[..., Any]) -> Callable[..., Any]:
    """``BaseCursor._bind_exec(n, timeout)`` / ``_exec(n, timeout)``: one fetch round trip."""

    def fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _suppress_db.get():
            return original(self, *args, **kwargs)
        coro = original(self, *args, **kwargs)
        return _run(trace, coro, self._connection, self._query, self._args, False)

    return _finish(fetch, original)


def _wrap_copy(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Connection._copy_out(copy_stmt, output, timeout)`` / ``_copy_in(copy_stmt, source,
    timeout)``: what ``copy_from_table``, ``copy_from_query`` and ``copy_to_table`` run."""

    def copy(self: Any, copy_stmt: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _suppress_db.get():
            return original(self, copy_stmt, *args, **kwargs)
        coro = original(self, copy_stmt, *args, **kwargs)
        return _run(trace, coro, self, copy_stmt, None, False, rows_from_status, copy=True)

    return _finish(copy, original)


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _copy_records_statement(table: str, schema: str | None, columns: Any) -> str:
    """``COPY "schema"."table"("a", "b") FROM STDIN (FORMAT binary)``."""
    name = f"{_quote(schema)}.{_quote(table)}" if schema else _quote(table)
    cols = "({})".format(", ".join(_quote(str(c)) for c in columns)) if columns else ""
    return f"COPY {name}{cols} FROM STDIN (FORMAT binary)"


def _wrap_copy_records(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Connection.copy_records_to_table(table_name, *, records, ...)``, which builds its
    ``COPY ... FROM STDIN (FORMAT binary)`` inside and sends it without ``_copy_in``: the span
    is named the way asyncpg writes that statement, from the table, schema and columns."""

    def copy_records_to_table(self: Any, table_name: str, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _suppress_db.get():
            return original(self, table_name, **kwargs)
        coro = original(self, table_name, **kwargs)
        name = _copy_records_statement(table_name, kwargs.get("schema_name"), kwargs.get("columns"))
        return _run(trace, coro, self, name, None, False, rows_from_status, copy=True)

    return _finish(copy_records_to_table, original)


def _wrap_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    """``connect_utils._connect(*, loop, connection_class, record_class, **kwargs)``."""

    async def traced(trace: Trace, args: Any, kwargs: Any) -> Any:
        start = _now()
        try:
            conn = await original(*args, **kwargs)
        except BaseException as exc:
            record_connect(trace, DRIVER, SYSTEM, start, error=exc)
            raise
        record_connect(trace, DRIVER, SYSTEM, start)
        mark_new_connection(conn, trace)
        return conn

    def _connect(*args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _suppress_db.get():
            return original(*args, **kwargs)
        return traced(trace, args, kwargs)

    return _finish(_connect, original)


def _wrap_reset(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Connection.reset()``, run by the pool on release: asyncpg's own housekeeping
    statements (``ROLLBACK``, ``RESET ALL``...) become one ``pool`` span, not ``db`` spans the
    application never wrote."""

    async def traced(trace: Trace, conn: Any, args: Any, kwargs: Any) -> Any:
        start = _now()
        token = _suppress_db.set(True)
        try:
            result = await original(conn, *args, **kwargs)
        except BaseException as exc:
            _record_reset(trace, start, exc)
            raise
        finally:
            _suppress_db.reset(token)
        _record_reset(trace, start, None)
        return result

    def reset(self: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _suppress_db.get():
            return original(self, *args, **kwargs)
        return traced(trace, self, args, kwargs)

    return _finish(reset, original)


def _record_reset(trace: Trace, start: int, error: BaseException | None) -> None:
    attrs: dict[str, Any] = {"driver": DRIVER, "db.system": SYSTEM}
    record(trace, "pool", RESET, start, error=error, **attrs)


class AsyncpgIntegration(Integration):
    """Records asyncpg statements, new connections and pool acquisition waits."""

    name: ClassVar[str] = "asyncpg"
    module: ClassVar[str] = "asyncpg"
    distribution: ClassVar[str | None] = "asyncpg"

    def __init__(self) -> None:
        super().__init__()
        self._patches = Patches()

    def _install(self) -> None:
        from asyncpg import connect_utils, connection, cursor, pool, prepared_stmt

        conn_cls = connection.Connection
        stmt_cls = prepared_stmt.PreparedStatement
        do_execute = "_PreparedStatement__do_execute"
        patch = self._patches.patch
        try:
            patch(conn_cls, "_execute", _wrap_execute_args(vars(conn_cls)["_execute"]))
            patch(conn_cls, "_executemany", _wrap_executemany(vars(conn_cls)["_executemany"]))
            patch(conn_cls, "execute", _wrap_simple_execute(vars(conn_cls)["execute"]))
            patch(conn_cls, "reset", _wrap_reset(vars(conn_cls)["reset"]))
            for name in ("_copy_out", "_copy_in"):
                patch(conn_cls, name, _wrap_copy(vars(conn_cls)[name]))
            copy_records = vars(conn_cls)["copy_records_to_table"]
            patch(conn_cls, "copy_records_to_table", _wrap_copy_records(copy_records))
            patch(stmt_cls, do_execute, _wrap_prepared(vars(stmt_cls)[do_execute]))
            for name in ("_bind_exec", "_exec"):
                patch(cursor.BaseCursor, name, _wrap_cursor(vars(cursor.BaseCursor)[name]))
            patch(connect_utils, "_connect", _wrap_connect(connect_utils._connect))
            patch(
                pool.Pool,
                "_acquire",
                wrap_pool_wait(vars(pool.Pool)["_acquire"], ACQUIRE, DRIVER, SYSTEM, is_async=True),
            )
        except BaseException:
            self._patches.restore()
            raise

    def _uninstall(self) -> None:
        self._patches.restore()

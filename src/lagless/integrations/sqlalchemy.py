"""Capture of SQLAlchemy 2 (sync engines, and async ones through their ``sync_engine``).

Built on SQLAlchemy's own event API, listened to on the :class:`~sqlalchemy.engine.Engine` and
:class:`~sqlalchemy.pool.Pool` *classes* so every engine is covered, whenever it was created:

- ``before_cursor_execute`` / ``after_cursor_execute`` / ``handle_error`` time each statement
  exactly as sent to the driver. Between ``before`` and ``after`` (or ``handle_error``) the
  driver-level integrations are told to stand down (``_suppress_db``), so a statement run by
  SQLAlchemy over sqlite3, psycopg or asyncpg is recorded once, with SQLAlchemy's view of it.
  The context-variable token lives on the execution context, which both events receive.
  ``handle_error`` is not guaranteed to reach us (a user listener registered earlier that
  raises ends the chain; ``skip_user_error_events`` skips it), so ``Connection``'s error path
  is also wrapped to end the suppression and record the failed statement whatever the
  listeners did: a suppression left on would silently stop all driver capture in that context.
- ``do_connect`` (before the DBAPI connect) and the pool's ``connect`` (after it) bound a new
  physical connection, recorded as a ``connect`` span.

The one patch: checking a connection out of a pool has no "checkout started" event (``checkout``
fires once it is done), so ``Pool.connect`` is wrapped to time the wait. The wrapper also keeps
the driver integrations quiet during checkout, where SQLAlchemy opens connections and pings them.
"""

from __future__ import annotations

import collections
from time import perf_counter_ns as _now
from typing import Any, ClassVar

from lagless._guard import report_internal_error
from lagless._spans import _suppress_db, record
from lagless._trace import _current_trace
from lagless.integrations._base import Integration
from lagless.integrations._db import Patches, db_attrs, record_connect, record_wait

DRIVER = "sqlalchemy"

# ``connection_record.info`` keys: when a connect began, and the trace a connection was opened
# in (cleared by its first statement).
_CONNECT_START = "lagless.connect_start"
_OPENED_IN = "lagless.opened_in"
# Connections marked with _OPENED_IN and not yet used; while zero, statements skip the lookup.
_pending_new = 0


def _before_cursor_execute(
    conn: Any,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    global _pending_new
    trace = _current_trace.get()
    if trace is None or context is None:
        return
    try:
        new = False
        if _pending_new:
            info = conn.info
            opened_in = info.pop(_OPENED_IN, None)
            if opened_in is not None:
                _pending_new = max(0, _pending_new - 1)
                new = opened_in is trace
        token = _suppress_db.set(True)
        context._lagless = (trace, token, new, _now())
    except Exception as exc:
        report_internal_error("sqlalchemy:before_cursor_execute", exc)


def _finish(context: Any) -> tuple[Any, int, bool] | None:
    """Take the state ``before_cursor_execute`` left on ``context`` and end the suppression."""
    state = getattr(context, "_lagless", None)
    if state is None:
        return None
    context._lagless = None
    trace, token, new, start = state
    try:
        _suppress_db.reset(token)
    except ValueError as exc:  # reset in another context than it was set: nothing to undo here
        report_internal_error("sqlalchemy:suppress-reset", exc)
    return trace, start, new


def _attrs(context: Any, parameters: Any, executemany: bool, new: bool) -> dict[str, Any]:
    dialect = context.dialect
    return db_attrs(
        DRIVER,
        dialect.name,
        parameters,
        many=executemany,
        # Async dialects run their sync-looking calls in a greenlet that awaits the driver,
        # so only a sync engine on an event loop's thread blocks it.
        sync=not dialect.is_async,
        new_connection=new,
    )


def _after_cursor_execute(
    conn: Any,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    end = _now()
    if context is None:
        return
    try:
        state = _finish(context)
        if state is None:
            return
        trace, start, new = state
        attrs = _attrs(context, parameters, executemany, new)
        rows = getattr(cursor, "rowcount", -1)
        if not (isinstance(rows, int) and rows >= 0):
            rows = None if executemany else _prefetched_rows(cursor)
        if rows is not None:
            attrs["rows"] = rows
        span = record(trace, "db", statement, start, end, **attrs)
        if rows is None and not executemany and span is not None and span.attrs is not None:
            # No count yet (pysqlite's SELECT): counted as SQLAlchemy fetches, when possible.
            _count_sqlite3_rows(cursor, span.attrs)
    except Exception as exc:
        report_internal_error("sqlalchemy:after_cursor_execute", exc)


def _prefetched_rows(cursor: Any) -> int | None:
    """Rows of a SELECT that an async dialect's cursor adapter already read whole.

    SQLAlchemy's asyncio adapters (aiosqlite, asyncpg, aiomysql...) run the query and, unless
    the cursor is server-side, fetch every row into a ``_rows`` buffer before returning: its
    length is the row count, free. Private to SQLAlchemy, so only a list or deque is taken."""
    if getattr(cursor, "server_side", False) or getattr(cursor, "description", None) is None:
        return None
    buffer = getattr(cursor, "_rows", None)
    if type(buffer) is list or type(buffer) is collections.deque:
        return len(buffer)
    return None


def _count_sqlite3_rows(cursor: Any, attrs: dict[str, Any]) -> None:
    """A SELECT over a sqlite3 connection lagless traces (pysqlite reports no row count):
    its rows are counted into the span as SQLAlchemy fetches them."""
    module = type(cursor).__module__
    if module != "lagless.integrations.sqlite3":
        return
    from lagless.integrations.sqlite3 import count_rows_into

    count_rows_into(cursor, attrs)


def _handle_error(ctx: Any) -> None:
    end = _now()
    context = ctx.execution_context
    if context is None:
        return
    try:
        state = _finish(context)
        if state is None:
            return
        trace, start, new = state
        attrs = _attrs(context, ctx.parameters, bool(context.executemany), new)
        record(
            trace,
            "db",
            ctx.statement or "",
            start,
            end,
            error=ctx.original_exception,
            **attrs,
        )
    except Exception as exc:
        report_internal_error("sqlalchemy:handle_error", exc)


def _wrap_error_path(original: Any) -> Any:
    """``Connection._handle_dbapi_exception``, which every failed statement goes through
    (it always raises): if no ``handle_error`` listener of ours ran, end the suppression and
    record the failure here."""

    def handle(
        self: Any, e: BaseException, statement: Any, parameters: Any, *a: Any, **kw: Any
    ) -> Any:
        try:
            return original(self, e, statement, parameters, *a, **kw)
        finally:
            # (cursor, context, ...) follow the parameters.
            context = a[1] if len(a) > 1 else kw.get("context")
            if context is not None and getattr(context, "_lagless", None) is not None:
                _record_failure(context, e, statement, parameters)

    handle.__wrapped__ = original  # type: ignore[attr-defined]
    return handle


def _record_failure(context: Any, error: BaseException, statement: Any, parameters: Any) -> None:
    end = _now()
    try:
        state = _finish(context)
        if state is None:
            return
        trace, start, new = state
        attrs = _attrs(context, parameters, bool(context.executemany), new)
        record(trace, "db", statement or "", start, end, error=error, **attrs)
    except Exception as exc:
        report_internal_error("sqlalchemy:error-path", exc)


def _do_connect(dialect: Any, conn_rec: Any, cargs: Any, cparams: Any) -> None:
    # Returns None: this listener only notes the time, the dialect still connects.
    if _current_trace.get() is None or conn_rec is None:
        return
    try:
        conn_rec.info[_CONNECT_START] = (_now(), dialect.name, not dialect.is_async)
    except Exception as exc:
        report_internal_error("sqlalchemy:do_connect", exc)


def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    global _pending_new
    trace = _current_trace.get()
    if connection_record is None:
        return
    try:
        started = connection_record.info.pop(_CONNECT_START, None)
        if trace is None or started is None:
            return
        start, system, sync = started
        record_connect(trace, DRIVER, system, start, sync=sync)
        connection_record.info[_OPENED_IN] = trace
        _pending_new += 1
    except Exception as exc:
        report_internal_error("sqlalchemy:connect", exc)


def _wrap_checkout(original: Any) -> Any:
    def connect(self: Any) -> Any:
        trace = _current_trace.get()
        if trace is None:
            return original(self)
        start = _now()
        # Drivers stay quiet during checkout: SQLAlchemy's own connect, ping and first-connect
        # queries are accounted for by the checkout and connect spans.
        token = _suppress_db.set(True)
        try:
            fairy = original(self)
        except BaseException as exc:
            _suppress_db.reset(token)
            record_wait(trace, CHECKOUT, DRIVER, start, system=_system(self), error=exc)
            raise
        _suppress_db.reset(token)
        record_wait(trace, CHECKOUT, DRIVER, start, system=_system(self))
        return fairy

    connect.__wrapped__ = original  # type: ignore[attr-defined]
    connect.__doc__ = original.__doc__
    return connect


CHECKOUT = "sqlalchemy.pool.checkout"


def _system(pool: Any) -> str | None:
    name = getattr(getattr(pool, "_dialect", None), "name", None)
    return name if isinstance(name, str) else None


class SQLAlchemyIntegration(Integration):
    """Records every statement, connection checkout and new connection of every engine."""

    name: ClassVar[str] = "sqlalchemy"
    module: ClassVar[str] = "sqlalchemy"
    distribution: ClassVar[str | None] = "sqlalchemy"

    def __init__(self) -> None:
        super().__init__()
        self._patches = Patches()
        self._listeners: list[tuple[Any, str, Any]] = []

    def _install(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Connection, Engine
        from sqlalchemy.pool import Pool, SingletonThreadPool

        self._listeners = [
            (Engine, "before_cursor_execute", _before_cursor_execute),
            (Engine, "after_cursor_execute", _after_cursor_execute),
            (Engine, "handle_error", _handle_error),
            (Engine, "do_connect", _do_connect),
            (Pool, "connect", _on_connect),
        ]
        for target, name, fn in self._listeners:
            event.listen(target, name, fn)
        for pool_cls in (Pool, SingletonThreadPool):
            self._patches.patch(pool_cls, "connect", _wrap_checkout(vars(pool_cls)["connect"]))
        error_path = vars(Connection).get("_handle_dbapi_exception")
        if error_path is not None:  # private; absent in some future version: listeners only
            self._patches.patch(Connection, "_handle_dbapi_exception", _wrap_error_path(error_path))

    def _uninstall(self) -> None:
        global _pending_new
        from sqlalchemy import event

        self._patches.restore()
        for target, name, fn in self._listeners:
            if event.contains(target, name, fn):
                event.remove(target, name, fn)
        self._listeners = []
        _pending_new = 0

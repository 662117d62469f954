"""Capture of the standard library's :mod:`sqlite3`.

sqlite3 has no execution hooks (``set_trace_callback`` sees expanded SQL but neither timing nor
parameters), so this integration hands out subclasses: the patched ``sqlite3.connect`` passes a
:class:`sqlite3.Connection` subclass as ``factory`` (a subclass of the caller's own factory when
one is given), whose ``cursor()`` returns a :class:`sqlite3.Cursor` subclass. Their
``execute``/``executemany``/``executescript`` time the call and record a ``db`` span when a
trace is active; otherwise they cost one context-variable read.

Rows: the row count for DML; for statements that return rows, the rows actually fetched through
the cursor, added to the span as they are read. Connections handed out while installed keep
their class after :meth:`SQLite3Integration.uninstall`, but record nothing once it has run.
"""

from __future__ import annotations

import sqlite3
from time import perf_counter_ns as _now
from typing import Any, ClassVar

from lagless._guard import report_internal_error
from lagless._spans import _suppress_db, record
from lagless._trace import Span, Trace, _current_trace
from lagless.integrations._base import Integration
from lagless.integrations._db import (
    Patches,
    db_attrs,
    mark_new_connection,
    record_connect,
    take_new_connection,
)

DRIVER = "sqlite3"
SYSTEM = "sqlite"

# Read by every wrapper so connections that outlive ``uninstall()`` stop recording.
_active = False


def _traced(
    trace: Trace,
    call: Any,
    conn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    many: bool = False,
    script: bool = False,
) -> Any:
    """Run ``call(*args, **kwargs)`` (a bound ``execute``-like method) as a ``db`` span."""
    sql = args[0] if args else kwargs.get("sql", kwargs.get("sql_script", ""))
    params = None if script else (args[1] if len(args) > 1 else kwargs.get("parameters"))
    start = _now()
    try:
        cur = call(*args, **kwargs)
    except BaseException as exc:
        record(trace, "db", str(sql), start, error=exc, **_attrs(trace, conn, params, many))
        raise
    span = record(trace, "db", str(sql), start, **_attrs(trace, conn, params, many))
    if span is not None and not script:
        try:
            _count_rows(cur, span)
        except Exception as exc:
            report_internal_error("sqlite3:rows", exc)
    return cur


def _attrs(trace: Trace, conn: Any, params: Any, many: bool) -> dict[str, Any]:
    try:
        return db_attrs(
            DRIVER,
            SYSTEM,
            params,
            many=many,
            sync=True,
            new_connection=take_new_connection(conn, trace),
        )
    except Exception as exc:
        report_internal_error("sqlite3:attrs", exc)
        return {"driver": DRIVER, "db.system": SYSTEM}


def _count_rows(cur: Any, span: Span) -> None:
    attrs = span.attrs
    if attrs is None:
        return
    if cur.description is None:  # DML/DDL: sqlite3 knows how many rows it changed
        if cur.rowcount >= 0:
            attrs["rows"] = cur.rowcount
        return
    if type(cur) is _TracedCursor or type(cur) is _CountingCursor:
        # Rows come later, as they are fetched. Only cursors of traced statements switch to the
        # counting class (same layout, so ``__class__`` may be reassigned); every other cursor
        # keeps C-speed iteration.
        attrs["rows"] = 0
        cur.__class__ = _CountingCursor
        cur._lagless_span = span


class _TracedCursor(sqlite3.Cursor):
    """What traced connections' ``cursor()`` returns: records ``execute*`` calls."""

    _lagless_span: Span | None = None

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or not _active or _suppress_db.get():
            return super().execute(*args, **kwargs)
        return _traced(trace, super().execute, self.connection, args, kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or not _active or _suppress_db.get():
            return super().executemany(*args, **kwargs)
        return _traced(trace, super().executemany, self.connection, args, kwargs, many=True)

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or not _active or _suppress_db.get():
            return super().executescript(*args, **kwargs)
        return _traced(trace, super().executescript, self.connection, args, kwargs, script=True)


class _CountingCursor(_TracedCursor):
    """A traced cursor holding rows of a recorded statement: fetches add to ``rows``."""

    def _add(self, n: int) -> None:
        span = self._lagless_span
        if span is not None and span.attrs is not None:
            span.attrs["rows"] = span.attrs.get("rows", 0) + n

    def _reset(self) -> None:
        self._lagless_span = None
        self.__class__ = _TracedCursor  # type: ignore[assignment]

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self._reset()
        return _TracedCursor.execute(self, *args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        self._reset()
        return _TracedCursor.executemany(self, *args, **kwargs)

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        self._reset()
        return _TracedCursor.executescript(self, *args, **kwargs)

    def fetchone(self) -> Any:
        row = super().fetchone()
        if row is not None:
            self._add(1)
        return row

    def fetchmany(self, *args: Any, **kwargs: Any) -> list[Any]:
        rows = super().fetchmany(*args, **kwargs)
        self._add(len(rows))
        return rows

    def fetchall(self) -> list[Any]:
        rows = super().fetchall()
        self._add(len(rows))
        return rows

    def __next__(self) -> Any:
        row = super().__next__()
        self._add(1)
        return row


class _ConnectionMixin:
    """Mixed in before :class:`sqlite3.Connection` (or the caller's subclass of it).

    ``Connection.execute`` and its siblings are C shortcuts that make a plain cursor and run
    the statement on it directly, so they would bypass the traced cursor. When traced, and
    unless the caller's class overrides them, they are replayed here as what they are:
    ``self.cursor().execute(...)``, whose cursor records the statement and counts its rows.
    """

    # False when the caller's factory overrides the shortcuts: then they are timed as calls.
    _lagless_plain: ClassVar[bool] = True

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs:
            return super().cursor(_TracedCursor)  # type: ignore[misc]
        return super().cursor(*args, **kwargs)  # type: ignore[misc]

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or not _active or _suppress_db.get():
            return super().execute(*args, **kwargs)  # type: ignore[misc]
        if self._lagless_plain:
            return self.cursor().execute(*args, **kwargs)
        return _traced(trace, super().execute, self, args, kwargs)  # type: ignore[misc]

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or not _active or _suppress_db.get():
            return super().executemany(*args, **kwargs)  # type: ignore[misc]
        if self._lagless_plain:
            return self.cursor().executemany(*args, **kwargs)
        call = super().executemany  # type: ignore[misc]
        return _traced(trace, call, self, args, kwargs, many=True)

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or not _active or _suppress_db.get():
            return super().executescript(*args, **kwargs)  # type: ignore[misc]
        if self._lagless_plain:
            return self.cursor().executescript(*args, **kwargs)
        call = super().executescript  # type: ignore[misc]
        return _traced(trace, call, self, args, kwargs, script=True)


class _TracedConnection(_ConnectionMixin, sqlite3.Connection):
    """The connection class handed out when the caller did not choose a factory."""


_factories: dict[type, type] = {sqlite3.Connection: _TracedConnection}

# ``sqlite3.connect(database, timeout, detect_types, isolation_level, check_same_thread,
# factory, ...)``: where ``factory`` sits when passed positionally.
_FACTORY_POS = 5


def _traced_factory(factory: Any) -> Any:
    """The traced counterpart of a connection factory; other callables are left alone."""
    traced = _factories.get(factory)
    if traced is not None:
        return traced
    if (
        isinstance(factory, type)
        and issubclass(factory, sqlite3.Connection)
        and not issubclass(factory, _ConnectionMixin)
    ):
        base = sqlite3.Connection
        plain = all(
            getattr(factory, name) is getattr(base, name)
            for name in ("cursor", "execute", "executemany", "executescript")
        )
        traced = type(factory.__name__, (_ConnectionMixin, factory), {"_lagless_plain": plain})
        traced.__module__ = factory.__module__
        traced.__qualname__ = factory.__qualname__
        _factories[factory] = traced
        return traced
    return factory


def _with_factory(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    try:
        if len(args) > _FACTORY_POS:
            return (*args[:_FACTORY_POS], _traced_factory(args[_FACTORY_POS]), *args[6:])
        kwargs["factory"] = _traced_factory(kwargs.get("factory", sqlite3.Connection))
    except Exception as exc:
        report_internal_error("sqlite3:factory", exc)
    return args


class SQLite3Integration(Integration):
    """Records every statement run through :mod:`sqlite3` connections opened after install."""

    name: ClassVar[str] = "sqlite3"
    module: ClassVar[str] = "sqlite3"
    distribution: ClassVar[str | None] = None

    def __init__(self) -> None:
        super().__init__()
        self._patches = Patches()

    def _install(self) -> None:
        global _active
        from sqlite3 import dbapi2

        original = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> Any:
            args = _with_factory(args, kwargs)
            trace = _current_trace.get()
            if trace is None or _suppress_db.get():
                return original(*args, **kwargs)
            start = _now()
            try:
                conn = original(*args, **kwargs)
            except BaseException as exc:
                record_connect(trace, DRIVER, SYSTEM, start, error=exc, sync=True)
                raise
            record_connect(trace, DRIVER, SYSTEM, start, sync=True)
            mark_new_connection(conn, trace)
            return conn

        connect.__wrapped__ = original  # type: ignore[attr-defined]
        connect.__doc__ = original.__doc__
        self._patches.patch(sqlite3, "connect", connect)
        # SQLAlchemy's pysqlite dialect and others call ``sqlite3.dbapi2.connect``.
        if dbapi2 is not sqlite3:
            self._patches.patch(dbapi2, "connect", connect)
        _active = True

    def _uninstall(self) -> None:
        global _active
        _active = False
        self._patches.restore()

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

import itertools
import operator
import sqlite3
from collections.abc import Iterator
from time import perf_counter_ns as _now
from typing import Any, ClassVar

from lagless._guard import report_internal_error
from lagless._spans import (
    _suppress_db,
    db_error_text,
)
from lagless._trace import Span, Trace, _current_trace
from lagless.integrations._base import Integration
from lagless.integrations._db import (
    Patches,
    mark_new_connection,
    record_connect,
    statement_attrs,
)

DRIVER = "sqlite3"
SYSTEM = "sqlite"

# Read by every wrapper so connections that outlive ``uninstall()`` stop recording.
_active = False

_get = _current_trace.get
_suppressed = _suppress_db.get
# The C methods, called unbound: ``super().execute(...)`` builds a super object and a bound
# method on every call (~150 ns), which the traced path and the no-trace path both pay.
_execute = sqlite3.Cursor.execute
_executemany = sqlite3.Cursor.executemany
_executescript = sqlite3.Cursor.executescript
_fetchone = sqlite3.Cursor.fetchone
_fetchmany = sqlite3.Cursor.fetchmany
_fetchall = sqlite3.Cursor.fetchall
_next = sqlite3.Cursor.__next__
_close = sqlite3.Cursor.close
_first = operator.itemgetter(0)
_cursor = sqlite3.Connection.cursor


def _traced(
    trace: Trace,
    call: Any,
    target: Any,
    conn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    many: bool = False,
    script: bool = False,
) -> Any:
    """Run ``call(target, *args, **kwargs)`` (``call(*args, **kwargs)`` when ``target`` is
    ``None``: a bound method) as a ``db`` span.

    Hand-inlined because it runs for every statement of a traced request: the attributes are
    built here in one dict, the span is added with ``Trace.add_span`` (no ``record(**attrs)``
    keyword round trip), ``record_params`` is read only when there are parameters, and the
    driver's methods are called unbound (no ``super()`` object, no bound method). It went from
    ~16 Python calls a statement to 5, and from ~3.0 µs to ~1.6 µs of CPU added to a traced
    ``cursor().execute(...).fetchone()`` (bench/overhead.py, Starlette app).
    """
    sql = args[0] if args else kwargs.get("sql", kwargs.get("sql_script", ""))
    params = None if script else (args[1] if len(args) > 1 else kwargs.get("parameters"))
    start = _now()
    try:
        cur = call(*args, **kwargs) if target is None else call(target, *args, **kwargs)
    except BaseException as exc:
        end = _now()
        try:
            failed = _attrs(trace, conn, params, many)
            failed["error"] = db_error_text(exc)
            trace.add_span("db", sql if type(sql) is str else str(sql), start, end, failed)
        except Exception as internal:
            report_internal_error("sqlite3:record", internal)
        raise
    end = _now()
    try:
        # ``_attrs`` inlined on the success path: one Python call fewer a statement.
        attrs = statement_attrs(DRIVER, SYSTEM, trace, conn, params, many, True)
        counting = False
        if not script:
            # Rows: DML/DDL carry sqlite3's own count; rows of a SELECT are counted as they are
            # fetched, by switching the cursor to the counting class (same layout, so
            # ``__class__`` may be reassigned, ~30 ns); other cursors keep C-speed iteration.
            if cur.description is None:
                if cur.rowcount >= 0:
                    attrs["rows"] = cur.rowcount
            else:
                cls = type(cur)
                counting = cls is _TracedCursor or cls is _CountingCursor
                if counting:
                    attrs["rows"] = 0
        spans = trace.spans
        if len(spans) < trace.max_spans:
            spans.append(
                Span("db", sql if type(sql) is str else str(sql), start, end - start, attrs)
            )
        else:
            trace.attrs["dropped_spans"] = trace.attrs.get("dropped_spans", 0) + 1
        if counting:
            cur.__class__ = _CountingCursor
            # The attributes dict itself, not the span: the per-row hooks then update it
            # with one slot read (the span was a second indirection and a None check).
            cur._lagless_rows = attrs
            cur._lagless_iter = None
    except Exception as exc:
        report_internal_error("sqlite3:record", exc)
    return cur


def _attrs(trace: Trace, conn: Any, params: Any, many: bool) -> dict[str, Any]:
    return statement_attrs(DRIVER, SYSTEM, trace, conn, params, many, True)


def count_rows_into(cursor: Any, attrs: dict[str, Any]) -> bool:
    """Count the rows read from ``cursor`` into ``attrs["rows"]`` as they are fetched, the way
    a statement this integration recorded itself is counted. For a layer that recorded the
    statement above the driver (SQLAlchemy over sqlite3, which reports no row count for a
    SELECT); True when ``cursor`` is one of ours with rows to read."""
    if not _active or type(cursor) is not _TracedCursor or cursor.description is None:
        return False
    attrs["rows"] = 0
    cursor.__class__ = _CountingCursor
    cursor._lagless_rows = attrs
    cursor._lagless_iter = None
    return True


class _TracedCursor(sqlite3.Cursor):
    """What traced connections' ``cursor()`` returns: records ``execute*`` calls."""

    # Slots, not an instance ``__dict__``: every cursor of a traced connection is one of
    # these, and the dict cost an allocation a cursor (~0.1 µs; the C base has none). Set
    # before a cursor becomes a :class:`_CountingCursor`, the only class that reads them:
    # the recorded span's attributes (``rows`` is counted there) and the pending count of
    # an iteration in progress.
    __slots__ = ("_lagless_iter", "_lagless_rows")
    _lagless_rows: dict[str, Any] | None
    _lagless_iter: list[Any] | None

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        trace = _get()
        if trace is None or not _active or _suppressed():
            return _execute(self, *args, **kwargs)
        return _traced(trace, _execute, self, self.connection, args, kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        trace = _get()
        if trace is None or not _active or _suppressed():
            return _executemany(self, *args, **kwargs)
        return _traced(trace, _executemany, self, self.connection, args, kwargs, many=True)

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        trace = _get()
        if trace is None or not _active or _suppressed():
            return _executescript(self, *args, **kwargs)
        conn = self.connection
        return _traced(trace, _executescript, self, conn, args, kwargs, script=True)


class _CountingCursor(_TracedCursor):
    """A traced cursor holding rows of a recorded statement: fetches add to ``rows``.

    ``fetchall``/``fetchmany`` add once a call. ``fetchone`` and ``next(cursor)`` need a
    Python hook a row (the C methods, called unbound, then one dict update). A ``for`` loop
    over the cursor, the usual way to read many rows, runs at C speed instead: ``__iter__``
    returns ``zip(rows, itertools.count())`` projected back to the rows (all C iterators, so
    no Python frame a row, ~0.2 µs a row saved), and the count is added to ``rows`` when the
    loop ends (a generator chained after the rows), or, for a loop left early, when the
    cursor is executed again, fetched from or closed. A loop left early on a cursor that is
    then dropped leaves its rows uncounted: the price of not paying a hook a row.
    """

    __slots__ = ()  # the same layout as _TracedCursor, so ``__class__`` may switch

    def _reset(self) -> None:
        if self._lagless_iter is not None:
            self._fold()
            self._lagless_iter = None
        self._lagless_rows = None
        self.__class__ = _TracedCursor  # type: ignore[assignment]

    def _fold(self) -> None:
        """Add the rows a ``for`` loop has read since the last fold to ``rows``."""
        state = self._lagless_iter
        attrs = self._lagless_rows
        if state is None or attrs is None:
            return
        # ``count(n)`` is what the counter's repr says; read without advancing it.
        seen = int(repr(state[0])[6:-1])
        attrs["rows"] = attrs.get("rows", 0) + seen - state[1]
        state[1] = seen

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self._reset()
        return _TracedCursor.execute(self, *args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        self._reset()
        return _TracedCursor.executemany(self, *args, **kwargs)

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        self._reset()
        return _TracedCursor.executescript(self, *args, **kwargs)

    def close(self) -> None:
        if self._lagless_iter is not None:
            self._fold()
        _close(self)

    # The fetch methods call the C ones unbound and add to the count inline: they run once
    # a row (``fetchone``, ``next``), where ``super()`` and a helper call cost ~0.3 µs.

    def fetchone(self) -> Any:
        row = _fetchone(self)
        if row is not None:
            attrs = self._lagless_rows
            if attrs is not None:
                attrs["rows"] = attrs.get("rows", 0) + 1
        return row

    def fetchmany(self, *args: Any, **kwargs: Any) -> list[Any]:
        rows: list[Any] = _fetchmany(self, *args, **kwargs)
        attrs = self._lagless_rows
        if attrs is not None:
            attrs["rows"] = attrs.get("rows", 0) + len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        rows: list[Any] = _fetchall(self)
        attrs = self._lagless_rows
        if attrs is not None:
            attrs["rows"] = attrs.get("rows", 0) + len(rows)
        return rows

    def __next__(self) -> Any:
        row = _next(self)
        attrs = self._lagless_rows
        if attrs is not None:
            attrs["rows"] = attrs.get("rows", 0) + 1
        return row

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        if self._lagless_rows is None:
            return self
        if self._lagless_iter is not None:
            self._fold()
        counter = itertools.count()
        state = self._lagless_iter = [counter, 0]
        # map(_next, repeat(self)) is sqlite3's own row iteration (its StopIteration ends
        # it), zip pairs each row with the counter (pulled only after a row came), and
        # _first takes the row back out; chain runs _folded once the rows are exhausted.
        rows = map(_first, zip(map(_next, itertools.repeat(self)), counter, strict=False))
        return itertools.chain(rows, _folded(self, state))


def _folded(cur: _CountingCursor, state: list[Any]) -> Iterator[Any]:
    """Chained after a counted ``for`` loop's rows: adds the count when the loop ends."""
    if cur._lagless_iter is state and type(cur) is _CountingCursor:
        cur._fold()
        cur._lagless_iter = None
    yield from ()  # a generator: its body runs when ``chain`` reaches it


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
            if self._lagless_plain:
                # sqlite3's own ``cursor`` is next in line: called unbound, ~0.1 µs cheaper.
                return _cursor(self, _TracedCursor)  # type: ignore[call-overload]
            return super().cursor(_TracedCursor)  # type: ignore[misc]
        return super().cursor(*args, **kwargs)  # type: ignore[misc]

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        trace = _get()
        if trace is None or not _active or _suppressed():
            return super().execute(*args, **kwargs)  # type: ignore[misc]
        if self._lagless_plain:
            return self.cursor().execute(*args, **kwargs)
        return _traced(trace, super().execute, None, self, args, kwargs)  # type: ignore[misc]

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        trace = _get()
        if trace is None or not _active or _suppressed():
            return super().executemany(*args, **kwargs)  # type: ignore[misc]
        if self._lagless_plain:
            return self.cursor().executemany(*args, **kwargs)
        call = super().executemany  # type: ignore[misc]
        return _traced(trace, call, None, self, args, kwargs, many=True)

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        trace = _get()
        if trace is None or not _active or _suppressed():
            return super().executescript(*args, **kwargs)  # type: ignore[misc]
        if self._lagless_plain:
            return self.cursor().executescript(*args, **kwargs)
        call = super().executescript  # type: ignore[misc]
        return _traced(trace, call, None, self, args, kwargs, script=True)


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

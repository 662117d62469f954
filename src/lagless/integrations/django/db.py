"""Django ORM capture through Django's own hook, ``connection.execute_wrapper``.

Every statement Django runs (ORM, ``cursor.execute``, migrations) passes through the wrappers in
``connection.execute_wrappers``. That list belongs to the ``DatabaseWrapper`` object, of which
Django keeps one per alias *per thread*, created lazily. So the wrapper is added:

- at install, to the wrappers this thread has already created
  (``connections.all(initialized_only=True)``);
- to every other one when it opens its database connection, from the ``connection_created``
  signal. A wrapper object cannot run a query before it connects, so no statement is missed;
  the signal costs nothing per query (only per connect), where wrapping "at first use" would
  need a check on every query. The membership test keeps it idempotent across reconnects
  (``CONN_MAX_AGE=0`` reconnects on every request).

A thread that had already connected before ``install()`` is picked up at its next connect.

The wrapper goes first in the list (outermost): ``connection.execute_wrapper()`` used as a
context manager removes *its* wrapper with ``list.pop()``, which must not take ours instead.

While it records, the wrapper sets ``_suppress_db`` so the driver integration underneath
(sqlite3, psycopg) does not record the same statement a second time.

With ``DEBUG = True`` (or ``force_debug_cursor``) Django logs each statement after running it,
through ``connection.ops.last_executed_query``; on SQLite that runs ``SELECT QUOTE(?), ...`` on
the raw connection to inline the parameters, outside the execute wrappers. Each connection's
``ops.last_executed_query`` is therefore wrapped to suppress driver spans too: otherwise a
``startproject`` app doubles its query count and shows a bogus N+1 of ``QUOTE`` selects.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter_ns as _now
from typing import Any

from lagless._guard import report_internal_error
from lagless._spans import _suppress_db, record
from lagless._trace import Trace, _current_trace
from lagless.errors import IntegrationNotAvailable
from lagless.integrations._base import Integration
from lagless.integrations._db import db_attrs, mark_new_connection, take_new_connection

__all__ = ["DjangoDBIntegration"]

_DISPATCH_UID = "lagless-django-db"


class _ExecuteWrapper:
    """The ``execute_wrapper`` callable: ``(execute, sql, params, many, context)``."""

    def __init__(self) -> None:
        self.active = False

    def __call__(
        self,
        execute: Callable[[str, Any, bool, dict[str, Any]], Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        trace = _current_trace.get()
        if trace is None or not self.active:
            return execute(sql, params, many, context)
        start = _now()
        token = _suppress_db.set(True)
        try:
            result = execute(sql, params, many, context)
        except BaseException as exc:
            _suppress_db.reset(token)
            self._record(trace, start, sql, params, many, context, exc)
            raise
        _suppress_db.reset(token)
        self._record(trace, start, sql, params, many, context, None)
        return result

    @staticmethod
    def _record(
        trace: Trace,
        start: int,
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
        error: BaseException | None,
    ) -> None:
        end = _now()
        attrs: dict[str, Any] = {"driver": "django"}
        try:
            conn = context.get("connection")
            attrs = db_attrs(
                "django",
                getattr(conn, "vendor", None),
                params,
                many=many,
                sync=True,
                new_connection=conn is not None and take_new_connection(conn, trace),
            )
            if error is None:
                cursor = context.get("cursor")
                rows = getattr(cursor, "rowcount", -1) if cursor is not None else -1
                if isinstance(rows, int) and rows >= 0:
                    attrs["rows"] = rows
        except Exception as exc:  # attributes are best effort; the span is still recorded
            report_internal_error("django:db-attrs", exc)
        record(trace, "db", sql, start, end, error=error, **attrs)


class _Unrecorded:
    """``ops.last_executed_query`` with driver spans suppressed (see the module docstring)."""

    def __init__(self, method: Callable[..., Any]) -> None:
        self.method = method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _current_trace.get() is None:
            return self.method(*args, **kwargs)
        token = _suppress_db.set(True)
        try:
            return self.method(*args, **kwargs)
        finally:
            _suppress_db.reset(token)


class DjangoDBIntegration(Integration):
    """Record every Django ORM statement as a ``db`` span (see the module docstring).

    Installed by ``lagless.django.LaglessMiddleware`` (Django is configured by then), or by hand
    after ``django.setup()``::

        lagless.install_integrations(["django"])
    """

    name = "django"
    module = "django"
    distribution = "django"

    def __init__(self) -> None:
        super().__init__()
        self.wrapper = _ExecuteWrapper()

    def _install(self) -> None:
        from django.conf import settings

        if not settings.configured:
            raise IntegrationNotAvailable(
                "the django integration needs Django's settings configured first: list "
                '"lagless.django.LaglessMiddleware" in MIDDLEWARE (it installs the integration '
                "when Django loads it), or call lagless.install_integrations(['django']) after "
                "django.setup()"
            )
        from django.db import connections
        from django.db.backends.signals import connection_created

        self.wrapper.active = True
        connection_created.connect(
            self._on_connection_created, weak=False, dispatch_uid=_DISPATCH_UID
        )
        for conn in connections.all(initialized_only=True):
            self._add(conn)

    def _uninstall(self) -> None:
        from django.db import connections
        from django.db.backends.signals import connection_created

        # Wrappers left on other threads' connections stay, inactive: they pass straight through.
        self.wrapper.active = False
        connection_created.disconnect(dispatch_uid=_DISPATCH_UID)
        for conn in connections.all(initialized_only=True):
            wrappers = conn.execute_wrappers
            while self.wrapper in wrappers:
                wrappers.remove(self.wrapper)
            ops = getattr(conn, "ops", None)
            if ops is not None and isinstance(vars(ops).get("last_executed_query"), _Unrecorded):
                del ops.last_executed_query

    def _on_connection_created(self, sender: Any, connection: Any = None, **kwargs: Any) -> None:
        if connection is None:
            return
        self._add(connection)
        trace = _current_trace.get()
        if trace is not None:
            # Opened inside a request: its first statement's span says so (new_connection).
            mark_new_connection(connection, trace)

    def _add(self, conn: Any) -> None:
        wrappers = conn.execute_wrappers
        if self.wrapper not in wrappers:
            wrappers.insert(0, self.wrapper)
        ops = getattr(conn, "ops", None)
        # An instance attribute on this connection's ops object: the class stays untouched.
        if ops is not None and not isinstance(vars(ops).get("last_executed_query"), _Unrecorded):
            ops.last_executed_query = _Unrecorded(ops.last_executed_query)

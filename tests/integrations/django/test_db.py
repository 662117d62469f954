"""DjangoDBIntegration: ORM statements as db spans, through Django's execute wrappers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, connections
from django.test import Client

from lagless._runtime import Runtime
from lagless._spans import _suppress_db
from lagless._trace import Trace, _current_trace
from lagless.errors import IntegrationNotAvailable
from lagless.integrations import get_integration, install_integrations, installed_integrations
from lagless.integrations.django.db import DjangoDBIntegration
from tests.integrations.django.testapp.models import Book


@pytest.fixture
def integration() -> Iterator[DjangoDBIntegration]:
    integ = get_integration("django")
    assert isinstance(integ, DjangoDBIntegration)
    integ.install()
    yield integ
    integ.uninstall()


@pytest.fixture
def traced() -> Iterator[Trace]:
    """A trace made current by hand, as a middleware would."""
    trace = Trace("GET", "/manual")
    token = _current_trace.set(trace)
    yield trace
    _current_trace.reset(token)


def in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a new thread (so Django gives it a new connection) and return its result."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return out[0]


def test_orm_queries_recorded_with_params_redacted(
    integration: DjangoDBIntegration, traced: Trace
) -> None:
    book = Book.objects.get(pk=2)
    assert book.title == "book 2"
    (span,) = traced.spans_of("db")
    assert span.name.startswith('SELECT "testapp_book"."id"')
    assert span.get("driver") == "django"
    assert span.get("db.system") == "sqlite"
    assert isinstance(span.get("params_hash"), int)
    assert span.get("params") is None
    assert span.get("error") is None


def test_same_query_same_params_same_fingerprint(
    integration: DjangoDBIntegration, traced: Trace
) -> None:
    Book.objects.get(pk=1)
    Book.objects.get(pk=1)
    Book.objects.get(pk=3)
    first, second, third = traced.spans_of("db")
    assert first.get("params_hash") == second.get("params_hash") != third.get("params_hash")


def test_record_params_opt_in(
    fresh_runtime: Runtime, integration: DjangoDBIntegration, traced: Trace
) -> None:
    fresh_runtime.configure(record_params=True)
    Book.objects.filter(pk=3).first()
    (span,) = traced.spans_of("db")
    assert list(span.get("params")) == [3]


def test_rows_and_executemany(integration: DjangoDBIntegration, traced: Trace) -> None:
    with connection.cursor() as cursor:
        cursor.executemany("UPDATE testapp_book SET pages = pages WHERE id = %s", [(1,), (2,)])
        cursor.execute("UPDATE testapp_book SET pages = pages WHERE id <= %s", [3])
    many, single = traced.spans_of("db")
    assert many.get("many") is True
    assert single.get("many") is None
    assert single.get("rows") == 3


def test_failing_query_recorded_and_exception_unchanged(
    integration: DjangoDBIntegration, traced: Trace
) -> None:
    with pytest.raises(OperationalError, match="no such table") as info, connection.cursor() as c:
        c.execute("SELECT * FROM lagless_missing_table WHERE id = %s", [1])
    assert isinstance(info.value, DatabaseError)
    (span,) = traced.spans_of("db")
    assert span.get("error") == "OperationalError: no such table: lagless_missing_table"
    assert "rows" not in (span.attrs or {})
    assert _suppress_db.get() is False  # restored on the error path too


def test_failing_query_in_a_request(fresh_runtime: Runtime) -> None:
    response = Client(raise_request_exception=False).get("/bad-query/")
    assert response.status_code == 500
    trace = fresh_runtime.recent_traces()[-1]
    (span,) = trace.spans_of("db")
    assert span.get("error").startswith("OperationalError: no such table")
    assert trace.attrs["error"].startswith("OperationalError")


def test_driver_spans_suppressed_while_recording(
    integration: DjangoDBIntegration, traced: Trace
) -> None:
    seen: list[bool] = []

    def spy(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(_suppress_db.get())
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        Book.objects.count()
    # Our wrapper is outermost, so the driver layer below it runs with suppression on.
    assert seen == [True]
    assert _suppress_db.get() is False
    assert len(traced.spans_of("db")) == 1


def test_user_execute_wrapper_context_manager_keeps_ours(integration: DjangoDBIntegration) -> None:
    def noop(execute: Any, *args: Any) -> Any:
        return execute(*args)

    with connection.execute_wrapper(noop):
        assert connection.execute_wrappers[-1] is noop
    assert connection.execute_wrappers == [integration.wrapper]


def test_no_trace_no_span_and_uninstall(integration: DjangoDBIntegration) -> None:
    assert integration.wrapper in connection.execute_wrappers
    Book.objects.count()  # outside a request: nothing to record, nothing breaks
    integration.uninstall()
    assert integration.wrapper not in connection.execute_wrappers
    trace = Trace("GET", "/after-uninstall")
    token = _current_trace.set(trace)
    try:
        Book.objects.count()
        # A connection on another thread that still holds the wrapper records nothing either.
        assert in_thread(lambda: integration.wrapper(lambda *a: "ran", "SELECT 1", None, False, {}))
    finally:
        _current_trace.reset(token)
    assert trace.spans == []


def test_new_connections_get_the_wrapper(integration: DjangoDBIntegration) -> None:
    def query_in_new_thread() -> tuple[bool, list[Any]]:
        trace = Trace("GET", "/thread")
        token = _current_trace.set(trace)
        try:
            Book.objects.count()
        finally:
            _current_trace.reset(token)
        return integration.wrapper in connection.execute_wrappers, trace.spans

    has_wrapper, spans = in_thread(query_in_new_thread)
    assert has_wrapper
    (span,) = spans
    assert span.get("new_connection") is True  # opened during that request


def test_not_available_before_settings_are_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(type(settings), "configured", property(lambda self: False))
    integ = DjangoDBIntegration()
    with pytest.raises(IntegrationNotAvailable, match="settings configured first"):
        integ.install()
    assert not integ.installed
    # Auto-install skips it quietly; the middleware installs it once Django is ready.
    assert "django" not in install_integrations(exclude=_others())


def _others() -> list[str]:
    from lagless.integrations import INTEGRATIONS

    return [name for name in INTEGRATIONS if name != "django"]


def test_no_double_recording_with_sqlite3_integration(fresh_runtime: Runtime) -> None:
    fresh_runtime.configure(integrations=["django", "sqlite3"])

    def request() -> int:
        # A new thread: its Django connection is opened after the sqlite3 integration.
        return Client().get("/orm-and-driver/").status_code

    assert in_thread(request) == 200
    assert {"django", "sqlite3"} <= set(installed_integrations())
    trace = fresh_runtime.recent_traces()[-1]
    db = trace.spans_of("db")
    # The ORM statement once (by the Django integration), the statement run straight on the
    # sqlite3 connection once (by the sqlite3 integration). Django's own connection set-up
    # statements (PRAGMAs) run outside its execute wrappers, so only the driver sees them.
    count = [s for s in db if s.name.startswith('SELECT COUNT(*) AS "__count"')]
    assert [s.get("driver") for s in count] == ["django"]
    assert [s.get("driver") for s in db if s.name == "SELECT 1"] == ["sqlite3"]
    names = [s.name for s in db]
    assert len(names) == len(set(names))
    assert all(s.get("driver") == "sqlite3" for s in db if s.name.upper().startswith("PRAGMA"))


def postgres_connection(dsn: str) -> Any:
    """A Django connection to the test server, built directly (not a ``DATABASES`` alias,
    which depends on whose settings won); lagless picks it up through ``connection_created``."""
    from django.db.utils import load_backend

    url = urlsplit(dsn)
    settings_dict = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/") or "test",
        "USER": url.username or "postgres",
        "PASSWORD": url.password or "",
        "HOST": url.hostname or "127.0.0.1",
        "PORT": str(url.port or 5432),
        "OPTIONS": {},
        "ATOMIC_REQUESTS": False,
        "AUTOCOMMIT": True,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "TIME_ZONE": None,
        "TEST": {},
    }
    return load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, "lagless_pg")


@pytest.mark.postgres
def test_postgresql_through_a_django_connection(
    fresh_runtime: Runtime, postgres_dsn: str, integration: DjangoDBIntegration
) -> None:
    pytest.importorskip("psycopg")
    table = f"lagless_dj_{uuid.uuid4().hex[:10]}"
    pg = postgres_connection(postgres_dsn)
    trace = Trace("GET", "/pg")
    token = _current_trace.set(trace)
    try:
        with pg.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, name text)")
            cursor.executemany(f"INSERT INTO {table} (name) VALUES (%s)", [("a",), ("b",)])
            cursor.execute(f"SELECT name FROM {table} WHERE name <> %s ORDER BY id", ["x"])
            assert [row[0] for row in cursor.fetchall()] == ["a", "b"]
            with pytest.raises(DatabaseError):
                cursor.execute(f"SELECT nope FROM {table}")
    finally:
        _current_trace.reset(token)
        with pg.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        pg.close()
    create, insert, select, bad = trace.spans_of("db")
    assert {s.get("db.system") for s in trace.spans_of("db")} == {"postgresql"}
    assert {s.get("driver") for s in trace.spans_of("db")} == {"django"}
    assert insert.get("many") is True
    assert select.get("rows") == 2
    assert bad.get("error").startswith('ProgrammingError: column "nope" does not exist')
    assert create.get("new_connection") is True


def test_debug_cursor_quote_query_not_recorded(fresh_runtime: Runtime) -> None:
    """With DEBUG (force_debug_cursor), Django's SQLite backend inlines the parameters of each
    logged statement with ``SELECT QUOTE(?)`` on the raw connection; that is Django's
    bookkeeping, not the app's query, and must not be recorded (it showed as an N+1)."""
    install_integrations(["django", "sqlite3"])

    def run() -> list[str]:
        trace = Trace("GET", "/debug")
        token = _current_trace.set(trace)
        connection.force_debug_cursor = True
        try:
            Book.objects.filter(title="x", pages__gte=1).count()
            assert "'x'" in connection.queries[-1]["sql"]  # Django inlined the parameters
        finally:
            connection.force_debug_cursor = False
            _current_trace.reset(token)
        return [s.name for s in trace.spans_of("db")]

    names = in_thread(run)
    assert not any("QUOTE(" in n for n in names), names
    assert [n for n in names if n.startswith("SELECT COUNT(*)")]
    # Uninstalling leaves the connection's ops as Django made them.
    get_integration("django").uninstall()
    assert "last_executed_query" not in vars(connection.ops)

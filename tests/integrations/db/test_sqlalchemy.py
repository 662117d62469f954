from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")
sa_async = pytest.importorskip("sqlalchemy.ext.asyncio")

from sqlalchemy import event, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlalchemy.pool import Pool, SingletonThreadPool  # noqa: E402

from lagless._guard import internal_errors, reset_internal_errors  # noqa: E402
from lagless._runtime import Runtime  # noqa: E402
from lagless._spans import _suppress_db, params_fingerprint  # noqa: E402
from lagless._trace import Trace, _current_trace  # noqa: E402
from lagless.integrations import get_integration  # noqa: E402
from lagless.integrations.sqlalchemy import CHECKOUT  # noqa: E402

from ._helpers import db_spans, pool_spans, tracing, unique_table  # noqa: E402
from .conftest import install  # noqa: E402

POOL_CONNECT = Pool.connect
ERROR_PATH = sa.engine.Connection._handle_dbapi_exception
SINGLETON_CONNECT = SingletonThreadPool.connect


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sa.db'}"


def _pg_url(dsn: str, driver: str) -> str:
    return dsn.replace("postgresql://", f"postgresql+{driver}://", 1)


def _run_sync(engine: Any) -> list[Any]:
    out: list[Any] = []
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(
            text("INSERT INTO items (id, name) VALUES (:id, :name)"),
            [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
        )
        out.append(conn.execute(text("UPDATE items SET name = 'z' WHERE id > :n"), {"n": 1}))
        out.append(conn.execute(text("SELECT id, name FROM items ORDER BY id")).all())
    return [r.rowcount if hasattr(r, "rowcount") else r for r in out]


def test_sync_sqlite_recorded_once_over_sqlite3(tmp_path: Path) -> None:
    install("sqlite3", "sqlalchemy")
    engine = sa.create_engine(_sqlite_url(tmp_path))
    with tracing() as trace:
        result = _run_sync(engine)
    engine.dispose()
    assert result == [2, [(1, "a"), (2, "z"), (3, "z")]]

    spans = db_spans(trace)
    # Exactly the statements SQLAlchemy sent (its own BEGIN is implicit for pysqlite).
    assert [s.name for s in spans] == [
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO items (id, name) VALUES (?, ?)",
        "UPDATE items SET name = 'z' WHERE id > ?",
        "SELECT id, name FROM items ORDER BY id",
    ]
    assert {s.get("driver") for s in trace.spans} == {"sqlalchemy"}
    create, insert, update, _select = spans
    assert create.get("new_connection") is True
    assert insert.get("new_connection") is None
    assert insert.get("many") is True and insert.get("rows") == 3
    assert update.get("rows") == 2
    assert update.get("params_hash") == params_fingerprint((1,))
    assert all(s.get("db.system") == "sqlite" and s.get("params") is None for s in spans)
    assert all(s.get("on_loop") is None for s in spans)
    (connect,) = pool_spans(trace, "connect")
    assert connect.get("new_connection") is True
    (checkout,) = pool_spans(trace, CHECKOUT)
    assert checkout.get("wait_ms") == checkout.duration_ns / 1_000_000
    assert checkout.start_ns <= connect.start_ns and connect.end_ns <= checkout.end_ns


def test_params_kept_when_record_params(tmp_path: Path, record_params: Runtime) -> None:
    install("sqlalchemy")
    engine = sa.create_engine(_sqlite_url(tmp_path))
    with tracing() as trace, engine.connect() as conn:
        conn.execute(text("SELECT :a + :b"), {"a": 1, "b": 2}).all()
    engine.dispose()
    (span,) = db_spans(trace)
    assert span.get("params") == (1, 2)


def test_failing_statement_recorded_exception_unchanged(tmp_path: Path) -> None:
    engine = sa.create_engine(_sqlite_url(tmp_path))
    with pytest.raises(sa.exc.OperationalError) as plain, engine.connect() as conn:
        conn.execute(text("SELECT * FROM missing"))

    install("sqlite3", "sqlalchemy")
    with tracing() as trace, engine.connect() as conn:
        with pytest.raises(sa.exc.OperationalError) as traced:
            conn.execute(text("SELECT * FROM missing"))
        assert _suppress_db.get() is False
        conn.execute(text("SELECT 1")).all()
    engine.dispose()
    assert type(traced.value) is type(plain.value)
    assert type(traced.value.orig) is type(plain.value.orig)
    assert str(traced.value.orig) == str(plain.value.orig)
    failed, ok = db_spans(trace)
    assert failed.name == "SELECT * FROM missing"
    assert failed.get("error") == "OperationalError: no such table: missing"
    assert ok.get("error") is None and ok.get("driver") == "sqlalchemy"


class _UserError(Exception):
    pass


def _raise_user_error(ctx: Any) -> None:
    raise _UserError("translated by the app") from ctx.original_exception


def test_suppression_ends_when_an_earlier_error_listener_raises(tmp_path: Path) -> None:
    """Regression: a user's ``handle_error`` listener that raises (SQLAlchemy's documented way
    to translate errors) stops the listener chain; ours used to come after it, never ran, and
    left the driver integrations switched off for the rest of the context."""
    # On the class and before lagless, so it comes first in the chain.
    event.listen(Engine, "handle_error", _raise_user_error)
    engine = sa.create_engine(_sqlite_url(tmp_path))
    install("sqlite3", "sqlalchemy")
    try:
        with tracing() as trace, engine.connect() as conn:
            with pytest.raises(_UserError):
                conn.execute(text("SELECT * FROM missing"))
            assert _suppress_db.get() is False
    finally:
        event.remove(Engine, "handle_error", _raise_user_error)
        engine.dispose()
    (failed,) = db_spans(trace)
    assert failed.get("error") == "OperationalError: no such table: missing"


def test_suppression_ends_when_error_events_are_skipped(tmp_path: Path) -> None:
    """``skip_user_error_events`` (used by SQLAlchemy's own dialects for probing statements)
    skips every ``handle_error`` listener; the failure is still recorded, once, and nothing
    is left switched off."""
    engine = sa.create_engine(_sqlite_url(tmp_path))
    install("sqlite3", "sqlalchemy")
    with tracing() as trace, engine.connect() as conn:
        probing = conn.execution_options(skip_user_error_events=True)
        with pytest.raises(sa.exc.OperationalError):
            probing.execute(text("SELECT * FROM missing"))
        assert _suppress_db.get() is False
        probing.execute(text("SELECT 1")).all()
    engine.dispose()
    failed, ok = db_spans(trace)
    assert failed.name == "SELECT * FROM missing" and failed.get("driver") == "sqlalchemy"
    assert "no such table" in failed.get("error")
    assert ok.name == "SELECT 1" and ok.get("error") is None


def test_nothing_recorded_without_active_trace(tmp_path: Path) -> None:
    install("sqlite3", "sqlalchemy")
    engine = sa.create_engine(_sqlite_url(tmp_path))
    assert _run_sync(engine)[0] == 2
    with engine.connect() as conn:
        with tracing() as trace:
            conn.execute(text("SELECT 1")).all()
        conn.execute(text("SELECT 2")).all()
    engine.dispose()
    assert [s.name for s in trace.spans] == ["SELECT 1"]


async def test_sync_engine_on_event_loop_is_flagged(tmp_path: Path, trace: Trace) -> None:
    install("sqlalchemy")
    engine = sa.create_engine(_sqlite_url(tmp_path))
    with engine.connect() as conn:
        conn.execute(text("SELECT 1")).all()
    engine.dispose()
    (span,) = db_spans(trace)
    assert span.get("on_loop") is True


async def test_async_aiosqlite_recorded_once(tmp_path: Path) -> None:
    pytest.importorskip("aiosqlite")
    install("sqlite3", "sqlalchemy")
    engine = sa_async.create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    with tracing() as trace:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (:x)"), [{"x": 1}, {"x": 2}])
            rows = (await conn.execute(text("SELECT x FROM t ORDER BY x"))).all()
        assert _suppress_db.get() is False
    await engine.dispose()
    assert rows == [(1,), (2,)]
    names = [s.name for s in db_spans(trace)]
    assert names == [
        "CREATE TABLE t (x INTEGER)",
        "INSERT INTO t VALUES (?)",
        "SELECT x FROM t ORDER BY x",
    ]
    assert {s.get("driver") for s in trace.spans} == {"sqlalchemy"}
    # The async dialect awaits the driver: not a blocking call on the loop.
    assert all(s.get("on_loop") is None for s in trace.spans)
    assert len(pool_spans(trace, "connect")) == 1


async def test_concurrent_traces_never_mix(tmp_path: Path) -> None:
    pytest.importorskip("aiosqlite")
    install("sqlalchemy")
    engine = sa_async.create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")

    async def request(n: int) -> Trace:
        trace = Trace()
        _current_trace.set(trace)  # this task's own context, as the ASGI middleware does
        async with engine.connect() as conn:
            for i in range(10):
                await conn.execute(text(f"SELECT {n}, {i}"))
                await asyncio.sleep(0)
        return trace

    first, second = await asyncio.gather(request(1), request(2))
    await engine.dispose()
    assert [s.name for s in db_spans(first)] == [f"SELECT 1, {i}" for i in range(10)]
    assert [s.name for s in db_spans(second)] == [f"SELECT 2, {i}" for i in range(10)]


@pytest.mark.postgres
def test_postgres_psycopg_recorded_once(postgres_dsn: str) -> None:
    pytest.importorskip("psycopg")
    install("psycopg", "sqlalchemy")
    engine = sa.create_engine(_pg_url(postgres_dsn, "psycopg"))
    table = unique_table()
    try:
        with tracing() as trace:
            with engine.begin() as conn:
                conn.execute(text(f"CREATE TABLE {table} (id int, name text)"))
                conn.execute(
                    text(f"INSERT INTO {table} VALUES (:id, :name)"),
                    [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
                )
                rows = conn.execute(text(f"SELECT name FROM {table} WHERE id >= :n"), {"n": 1})
                assert sorted(rows.scalars()) == ["a", "b"]
            with engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError) as info:
                conn.execute(text("SELECT nope FROM " + table))
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
    assert type(info.value.orig).__module__.startswith("psycopg")
    assert {s.get("driver") for s in trace.spans} == {"sqlalchemy"}
    spans = [s for s in db_spans(trace) if table in s.name]
    assert [s.name.split()[0] for s in spans] == ["CREATE", "INSERT", "SELECT", "SELECT"]
    assert spans[2].get("rows") == 2
    assert spans[2].get("db.system") == "postgresql"
    assert spans[3].get("error").startswith("UndefinedColumn")
    # One physical connection, recorded by SQLAlchemy and not again by psycopg underneath.
    assert len(pool_spans(trace, "connect")) == 1
    assert len(pool_spans(trace, CHECKOUT)) == 2


@pytest.mark.postgres
async def test_async_asyncpg_gather_recorded_once(postgres_dsn: str) -> None:
    pytest.importorskip("asyncpg")
    install("asyncpg", "sqlalchemy")
    engine = sa_async.create_async_engine(_pg_url(postgres_dsn, "asyncpg"), pool_size=3)

    async def query(n: int) -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(text(f"SELECT {n} + :one"), {"one": 1})).scalar_one())

    with tracing() as trace:
        results = await asyncio.gather(query(1), query(2), query(3))
    await engine.dispose()
    assert results == [2, 3, 4]
    # SQLAlchemy's statements are recorded by SQLAlchemy only; what asyncpg records itself is
    # the rollback SQLAlchemy issues outside any statement when a connection goes back to the
    # pool (a real round trip, which SQLAlchemy has no event around).
    below = {s.name for s in trace.spans if s.get("driver") == "asyncpg"}
    assert below <= {"ROLLBACK;"}
    mine = sorted(s.name for s in db_spans(trace) if "+ $1" in s.name)
    assert mine == ["SELECT 1 + $1", "SELECT 2 + $1", "SELECT 3 + $1"]
    assert len(pool_spans(trace, CHECKOUT)) == 3


@pytest.mark.postgres
async def test_async_pool_checkout_wait(postgres_dsn: str) -> None:
    pytest.importorskip("asyncpg")
    install("sqlalchemy")
    engine = sa_async.create_async_engine(
        _pg_url(postgres_dsn, "asyncpg"), pool_size=1, max_overflow=0
    )

    async def hold() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(0.02)"))

    with tracing() as trace:
        await asyncio.gather(hold(), hold())
    await engine.dispose()
    sleeps = sorted((s for s in db_spans(trace) if "pg_sleep" in s.name), key=lambda s: s.end_ns)
    checkouts = sorted(pool_spans(trace, CHECKOUT), key=lambda s: s.end_ns)
    assert len(sleeps) == 2 and len(checkouts) == 2
    # The second task could only get the single connection once the first had released it.
    assert checkouts[1].end_ns >= sleeps[0].end_ns
    assert checkouts[1].get("wait_ms") == checkouts[1].duration_ns / 1_000_000


def test_install_idempotent_and_uninstall_restores(tmp_path: Path) -> None:
    integration = get_integration("sqlalchemy")
    integration.install()
    integration.install()
    engine = sa.create_engine(_sqlite_url(tmp_path))
    with tracing() as trace, engine.connect() as conn:
        conn.execute(text("SELECT 1")).all()
    assert len(db_spans(trace)) == 1

    integration.uninstall()
    integration.uninstall()
    assert Pool.connect is POOL_CONNECT
    assert SingletonThreadPool.connect is SINGLETON_CONNECT
    assert "connect" not in vars(sa.pool.QueuePool)
    assert sa.engine.Connection._handle_dbapi_exception is ERROR_PATH
    for name in ("before_cursor_execute", "after_cursor_execute", "handle_error", "do_connect"):
        assert not event.contains(Engine, name, getattr(_mod(), f"_{name}"))
    with tracing() as trace, engine.connect() as conn:
        conn.execute(text("SELECT 2")).all()
    engine.dispose()
    assert trace.spans == []


def _mod() -> Any:
    import lagless.integrations.sqlalchemy as mod

    return mod


def test_internal_error_never_fails_the_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install("sqlite3", "sqlalchemy")
    engine = sa.create_engine(_sqlite_url(tmp_path))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("lagless bug")

    with tracing() as trace, engine.connect() as conn:
        monkeypatch.setattr(Trace, "add_span", broken)
        assert conn.execute(text("SELECT 40 + 2")).scalar_one() == 42
        with pytest.raises(sa.exc.OperationalError):
            conn.execute(text("SELECT * FROM missing"))
        monkeypatch.undo()
        assert _suppress_db.get() is False
    engine.dispose()
    assert db_spans(trace) == []
    assert internal_errors.get("record:db") == 2
    reset_internal_errors()


def test_sync_sqlite_select_rows_counted_as_fetched(tmp_path: Path) -> None:
    """pysqlite reports no row count for a SELECT: over lagless's traced sqlite3 connection,
    the rows SQLAlchemy fetches are counted into its span (all, some, or none read)."""
    install("sqlite3", "sqlalchemy")
    engine = sa.create_engine(_sqlite_url(tmp_path))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(
            text("INSERT INTO items (id, name) VALUES (:id, :name)"),
            [{"id": i, "name": f"n{i}"} for i in range(1, 6)],
        )
    with tracing() as trace, engine.connect() as conn:
        assert len(conn.execute(text("SELECT id FROM items")).all()) == 5
        assert conn.execute(text("SELECT id FROM items ORDER BY id")).first() == (1,)
        one = conn.execute(text("SELECT id FROM items WHERE id > :n"), {"n": 3})
        assert one.fetchmany(1) == [(4,)]
        one.close()
        assert conn.execute(text("SELECT id FROM items WHERE id > 99")).all() == []
    engine.dispose()
    every, first, some, none = db_spans(trace)
    assert every.get("rows") == 5
    assert first.get("rows") == 1  # .first() reads one row and closes the cursor
    assert some.get("rows") == 1
    assert none.get("rows") == 0


async def test_async_select_rows_from_the_adapters_buffer(tmp_path: Path) -> None:
    """An async dialect's cursor adapter reads a SELECT whole before returning: its buffer's
    length is the span's row count."""
    pytest.importorskip("aiosqlite")
    install("sqlite3", "sqlalchemy")
    engine = sa_async.create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        await conn.execute(text("INSERT INTO t VALUES (:x)"), [{"x": i} for i in range(7)])
    with tracing() as trace:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT x FROM t WHERE x < 4"))).first() == (0,)
            assert (await conn.execute(text("SELECT x FROM t WHERE x > 99"))).all() == []
    await engine.dispose()
    some, none = db_spans(trace)
    assert some.get("rows") == 4  # what the query returned, read whole by the adapter
    assert none.get("rows") == 0

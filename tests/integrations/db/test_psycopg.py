from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")
psycopg_pool = pytest.importorskip("psycopg_pool")

from psycopg import sql  # noqa: E402

from lagless._guard import internal_errors, reset_internal_errors  # noqa: E402
from lagless._runtime import Runtime  # noqa: E402
from lagless._spans import _suppress_db, params_fingerprint  # noqa: E402
from lagless._trace import Trace, _current_trace  # noqa: E402
from lagless.integrations import get_integration  # noqa: E402
from lagless.integrations import psycopg as psycopg_integration  # noqa: E402
from lagless.integrations.psycopg import GETCONN  # noqa: E402

from ._helpers import db_spans, pool_spans, tracing, unique_table  # noqa: E402
from .conftest import install  # noqa: E402

pytestmark = pytest.mark.postgres

ORIGINALS = {
    "connect": psycopg.connect,
    "Connection.connect": vars(psycopg.Connection)["connect"],
    "AsyncConnection.connect": vars(psycopg.AsyncConnection)["connect"],
    "Cursor.execute": psycopg.Cursor.execute,
    "Cursor.executemany": psycopg.Cursor.executemany,
    "Cursor.stream": psycopg.Cursor.stream,
    "Cursor.copy": psycopg.Cursor.copy,
    "AsyncCursor.execute": psycopg.AsyncCursor.execute,
    "AsyncCursor.executemany": psycopg.AsyncCursor.executemany,
    "AsyncCursor.stream": psycopg.AsyncCursor.stream,
    "AsyncCursor.copy": psycopg.AsyncCursor.copy,
    "ServerCursor.execute": psycopg.ServerCursor.execute,
    "AsyncServerCursor.execute": psycopg.AsyncServerCursor.execute,
    "ConnectionPool.getconn": psycopg_pool.ConnectionPool.getconn,
    "AsyncConnectionPool.getconn": psycopg_pool.AsyncConnectionPool.getconn,
}


def _current() -> dict[str, Any]:
    return {
        "connect": psycopg.connect,
        "Connection.connect": vars(psycopg.Connection)["connect"],
        "AsyncConnection.connect": vars(psycopg.AsyncConnection)["connect"],
        "Cursor.execute": psycopg.Cursor.execute,
        "Cursor.executemany": psycopg.Cursor.executemany,
        "Cursor.stream": psycopg.Cursor.stream,
        "Cursor.copy": psycopg.Cursor.copy,
        "AsyncCursor.execute": psycopg.AsyncCursor.execute,
        "AsyncCursor.executemany": psycopg.AsyncCursor.executemany,
        "AsyncCursor.stream": psycopg.AsyncCursor.stream,
        "AsyncCursor.copy": psycopg.AsyncCursor.copy,
        "ServerCursor.execute": psycopg.ServerCursor.execute,
        "AsyncServerCursor.execute": psycopg.AsyncServerCursor.execute,
        "ConnectionPool.getconn": psycopg_pool.ConnectionPool.getconn,
        "AsyncConnectionPool.getconn": psycopg_pool.AsyncConnectionPool.getconn,
    }


@pytest.fixture
def table(postgres_dsn: str) -> Iterator[str]:
    name = unique_table()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, name text)")
        conn.execute(f"INSERT INTO {name} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


def test_sync_statements_rows_params(postgres_dsn: str, table: str) -> None:
    install("psycopg")
    with tracing() as trace, psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute(f"SELECT id FROM {table} WHERE id > %s", (1,)).fetchall()
        cur = conn.cursor()
        cur.execute(f"UPDATE {table} SET name = %(n)s WHERE id <= %(id)s", {"n": "x", "id": 2})
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(10, "j"), (11, "k")])
        composed = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        count = conn.execute(composed).fetchone()
        conn.rollback()
    assert rows == [(2,), (3,)]
    assert count == (5,)
    select, update, insert, counted = db_spans(trace)
    assert select.name == f"SELECT id FROM {table} WHERE id > %s"
    assert select.get("rows") == 2
    assert select.get("params_hash") == params_fingerprint((1,))
    assert select.get("new_connection") is True
    assert update.get("rows") == 2 and update.get("new_connection") is None
    assert insert.get("many") is True and insert.get("rows") == 2
    assert counted.name == f'SELECT count(*) FROM "{table}"'  # rendered as sent
    for span in (select, update, insert, counted):
        assert span.get("driver") == "psycopg"
        assert span.get("db.system") == "postgresql"
        assert span.get("params") is None
        assert span.get("on_loop") is None
    (connect,) = pool_spans(trace, "connect")
    assert connect.get("new_connection") is True and connect.end_ns <= select.start_ns


def test_params_kept_when_record_params(postgres_dsn: str, record_params: Runtime) -> None:
    install("psycopg")
    with tracing() as trace, psycopg.connect(postgres_dsn) as conn:
        conn.execute("SELECT %s::int + %s::int", (1, 2)).fetchone()
    (span,) = db_spans(trace)
    assert span.get("params") == (1, 2)


def test_failing_query_recorded_exception_unchanged(postgres_dsn: str, trace: Trace) -> None:
    install("psycopg")
    with psycopg.connect(postgres_dsn) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable) as info:
            conn.execute("SELECT * FROM lagless_no_such_table")
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)
    failed, ok = db_spans(trace)
    assert failed.get("error").startswith("UndefinedTable: relation")
    assert "lagless_no_such_table" in str(info.value)
    assert ok.get("error") is None


@pytest.mark.parametrize("keep", [False, True])
def test_error_text_does_not_repeat_parameter_values(
    postgres_dsn: str, fresh_runtime: Runtime, keep: bool
) -> None:
    """Regression: PostgreSQL's DETAIL line quotes the failing value (``Key (email)=(...)``),
    so a unique violation stored the bound parameter in the span despite record_params off."""
    fresh_runtime.configure(record_params=keep)
    install("psycopg")
    table = unique_table()
    with tracing() as trace, psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TEMP TABLE {table} (email text UNIQUE)")
        conn.execute(f"INSERT INTO {table} VALUES (%s)", ("alice@example.com",))
        with pytest.raises(psycopg.errors.UniqueViolation) as info:
            conn.execute(f"INSERT INTO {table} VALUES (%s)", ("alice@example.com",))
    assert "alice@example.com" in str(info.value)  # the app's exception is untouched
    error = db_spans(trace)[-1].get("error")
    assert error.startswith("UniqueViolation: duplicate key value violates unique constraint")
    assert ("alice@example.com" in error) is keep


def test_failed_connect_recorded(trace: Trace) -> None:
    install("psycopg")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/lagless_no_such_db")
    (connect,) = pool_spans(trace, "connect")
    assert connect.get("error").startswith("OperationalError")


def test_server_cursor(postgres_dsn: str, table: str, trace: Trace) -> None:
    install("psycopg")
    with psycopg.connect(postgres_dsn) as conn, conn.cursor(name="lagless_cur") as cur:
        cur.execute(f"SELECT id FROM {table} ORDER BY id")
        assert cur.fetchall() == [(1,), (2,), (3,)]
    names = [s.name for s in db_spans(trace)]
    assert names == [f"SELECT id FROM {table} ORDER BY id"]


def test_nothing_recorded_without_active_trace(postgres_dsn: str) -> None:
    install("psycopg")
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        with tracing() as trace:
            conn.execute("SELECT 2").fetchone()
        conn.execute("SELECT 3").fetchone()
    assert [s.name for s in trace.spans] == ["SELECT 2"]


def test_suppressed_under_an_orm(postgres_dsn: str, trace: Trace) -> None:
    install("psycopg")
    with psycopg.connect(postgres_dsn) as conn:
        token = _suppress_db.set(True)
        try:
            conn.execute("SELECT 1").fetchone()
        finally:
            _suppress_db.reset(token)
    assert db_spans(trace) == []


async def test_sync_driver_on_event_loop_is_flagged(postgres_dsn: str, trace: Trace) -> None:
    install("psycopg")
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("SELECT 1").fetchone()
    (span,) = db_spans(trace)
    assert span.get("on_loop") is True


def test_sync_pool_wait(postgres_dsn: str) -> None:
    install("psycopg")
    pool = psycopg_pool.ConnectionPool(postgres_dsn, min_size=1, max_size=1, open=False)
    pool.open(wait=True)
    holding = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with pool.connection():
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        holding.wait(10)
        with tracing() as trace:
            threading.Timer(0.02, release.set).start()
            with pool.connection() as conn:
                released_before = release.is_set()
                conn.execute("SELECT 1").fetchone()
    finally:
        release.set()
        thread.join()
        pool.close()
    assert released_before  # the single connection only came back once the holder let go
    (wait,) = pool_spans(trace, GETCONN)
    assert wait.get("wait_ms") == wait.duration_ns / 1_000_000
    assert wait.get("driver") == "psycopg"
    (query,) = db_spans(trace)
    assert query.start_ns >= wait.end_ns


@pytest.fixture
async def apool(postgres_dsn: str) -> AsyncIterator[Any]:
    install("psycopg")
    pool = psycopg_pool.AsyncConnectionPool(postgres_dsn, min_size=1, max_size=3, open=False)
    await pool.open(wait=True)
    yield pool
    await pool.close()


async def test_async_gather_in_one_trace(apool: Any) -> None:
    async def query(n: int) -> int:
        async with apool.connection() as conn:
            cur = await conn.execute("SELECT %s::int * 10", (n,))
            row = await cur.fetchone()
            return int(row[0])

    with tracing() as trace:
        results = await asyncio.gather(query(1), query(2), query(3))
        assert _suppress_db.get() is False
    assert results == [10, 20, 30]
    spans = db_spans(trace)
    assert [s.name for s in spans] == ["SELECT %s::int * 10"] * 3
    assert sorted(s.get("params_hash") for s in spans) == sorted(
        params_fingerprint((n,)) for n in (1, 2, 3)
    )
    assert all(s.get("rows") == 1 and s.get("on_loop") is None for s in spans)
    assert len(pool_spans(trace, GETCONN)) == 3


async def test_async_pool_wait_second_task_waits(postgres_dsn: str) -> None:
    install("psycopg")
    pool = psycopg_pool.AsyncConnectionPool(postgres_dsn, min_size=1, max_size=1, open=False)
    await pool.open(wait=True)

    async def hold() -> None:
        async with pool.connection() as conn:
            await conn.execute("SELECT pg_sleep(0.02)")

    try:
        with tracing() as trace:
            await asyncio.gather(hold(), hold())
    finally:
        await pool.close()
    sleeps = sorted(db_spans(trace), key=lambda s: s.end_ns)
    waits = sorted(pool_spans(trace, GETCONN), key=lambda s: s.end_ns)
    assert len(sleeps) == 2 and len(waits) == 2
    assert waits[1].end_ns >= sleeps[0].end_ns  # got the connection only after its release


async def test_async_connection_errors_and_new_connection(postgres_dsn: str) -> None:
    install("psycopg")
    with tracing() as trace:
        async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
            await conn.execute("SELECT 1")
            with pytest.raises(psycopg.errors.DivisionByZero):
                await conn.execute("SELECT 1 / 0")
            await conn.rollback()
            cur = conn.cursor()
            await cur.executemany("SELECT %s", [(1,), (2,)])
            async with conn.cursor(name="lagless_async_cur") as named:
                await named.execute("SELECT generate_series(1, 3)")
                assert len(await named.fetchall()) == 3
    first, failed, many, named_span = db_spans(trace)
    assert first.get("new_connection") is True
    assert failed.get("error") == "DivisionByZero: division by zero"
    assert many.get("many") is True
    assert named_span.name == "SELECT generate_series(1, 3)"
    assert len(pool_spans(trace, "connect")) == 1


async def test_concurrent_traces_never_mix(apool: Any) -> None:
    async def request(n: int) -> Trace:
        trace = Trace()
        _current_trace.set(trace)
        async with apool.connection() as conn:
            for i in range(5):
                await conn.execute(f"SELECT {n}, {i}")
                await asyncio.sleep(0)
        return trace

    first, second = await asyncio.gather(request(1), request(2))
    assert [s.name for s in db_spans(first)] == [f"SELECT 1, {i}" for i in range(5)]
    assert [s.name for s in db_spans(second)] == [f"SELECT 2, {i}" for i in range(5)]


def test_install_idempotent_and_uninstall_restores(postgres_dsn: str) -> None:
    integration = get_integration("psycopg")
    integration.install()
    integration.install()
    assert _current()["Cursor.execute"] is not ORIGINALS["Cursor.execute"]
    with tracing() as trace, psycopg.connect(postgres_dsn) as conn:
        conn.execute("SELECT 1")
    assert len(db_spans(trace)) == 1
    integration.uninstall()
    integration.uninstall()
    assert _current() == ORIGINALS
    with tracing() as trace, psycopg.connect(postgres_dsn) as conn:
        conn.execute("SELECT 1")
    assert trace.spans == []


def test_internal_error_never_fails_the_query(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    install("psycopg")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("lagless bug")

    with psycopg.connect(postgres_dsn) as conn, tracing() as trace:
        # The span is appended inline (no add_span): break the attribute builder it calls.
        monkeypatch.setattr(psycopg_integration, "statement_attrs", broken)
        assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")
        monkeypatch.undo()
    assert trace.spans == []
    assert internal_errors.get("psycopg:record") == 2
    reset_internal_errors()


def test_stream_one_span_rows_read_and_driver_time(postgres_dsn: str, table: str) -> None:
    """``cursor.stream()`` is one span: rows as read, the time spent in the driver (not the
    caller's work between rows), and recorded whether the loop ends or breaks early."""
    install("psycopg")
    with tracing() as trace, psycopg.connect(postgres_dsn) as conn:
        cur = conn.cursor()
        assert list(cur.stream(f"SELECT id FROM {table} WHERE id >= %s", (1,))) == [
            (1,),
            (2,),
            (3,),
        ]
        stream = cur.stream(f"SELECT id FROM {table} ORDER BY id")
        for row in stream:
            assert row == (1,)
            break
        stream.close()  # what a dropped generator does; explicit, so the test does not wait on GC
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the connection is usable again
    full, early, after = db_spans(trace)
    assert full.name == f"SELECT id FROM {table} WHERE id >= %s"
    assert full.get("stream") is True and full.get("rows") == 3
    assert full.get("params_hash") == params_fingerprint((1,))
    assert early.get("stream") is True and early.get("rows") == 1
    assert after.name == "SELECT 1" and after.get("stream") is None
    assert full.end_ns <= early.start_ns


def test_stream_error_recorded_and_raised(postgres_dsn: str, trace: Trace) -> None:
    install("psycopg")
    with psycopg.connect(postgres_dsn) as conn, pytest.raises(psycopg.errors.UndefinedTable):
        list(conn.cursor().stream("SELECT * FROM lagless_no_such_table"))
    (span,) = db_spans(trace)
    assert span.get("stream") is True and span.get("rows") == 0
    assert span.get("error").startswith("UndefinedTable")


def test_copy_in_and_out_recorded(postgres_dsn: str, table: str) -> None:
    install("psycopg")
    with tracing() as trace, psycopg.connect(postgres_dsn) as conn:
        cur = conn.cursor()
        with cur.copy(f"COPY {table} (id, name) FROM STDIN") as copy:
            for i in range(20, 25):
                copy.write_row((i, f"n{i}"))
        with cur.copy(f"COPY (SELECT id FROM {table} ORDER BY id) TO STDOUT") as copy:
            out = list(copy.rows())
        conn.rollback()
    assert len(out) == 8
    copy_in, copy_out = db_spans(trace)
    assert copy_in.name == f"COPY {table} (id, name) FROM STDIN"
    assert copy_in.get("copy") is True and copy_in.get("rows") == 5
    assert copy_out.get("copy") is True and copy_out.get("error") is None


def test_copy_error_recorded_and_raised(postgres_dsn: str, table: str, trace: Trace) -> None:
    install("psycopg")
    with (
        psycopg.connect(postgres_dsn) as conn,
        pytest.raises(psycopg.errors.UniqueViolation),
        conn.cursor().copy(f"COPY {table} (id, name) FROM STDIN") as copy,
    ):
        copy.write_row((1, "duplicate of an existing key"))
    (span,) = db_spans(trace)
    assert span.get("copy") is True
    assert span.get("error").startswith("UniqueViolation")


async def test_async_stream_and_copy(postgres_dsn: str, table: str) -> None:
    install("psycopg")
    async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
        with tracing() as trace:
            cur = conn.cursor()
            rows = [row async for row in cur.stream(f"SELECT id FROM {table} ORDER BY id")]
            async with cur.copy(f"COPY {table} (id, name) FROM STDIN") as copy:
                await copy.write_row((30, "x"))
            await conn.rollback()
    assert rows == [(1,), (2,), (3,)]
    streamed, copied = db_spans(trace)
    assert streamed.get("stream") is True and streamed.get("rows") == 3
    assert streamed.get("on_loop") is None
    assert copied.get("copy") is True and copied.get("rows") == 1


def test_stream_and_copy_untraced_are_the_originals(postgres_dsn: str, table: str) -> None:
    """Without a trace, ``stream`` hands back psycopg's own generator and ``copy`` its own
    context manager."""
    install("psycopg")
    with psycopg.connect(postgres_dsn) as conn:
        cur = conn.cursor()
        gen = cur.stream(f"SELECT id FROM {table}")
        assert gen.gi_code is ORIGINALS["Cursor.stream"].__code__
        assert sorted(gen) == [(1,), (2,), (3,)]
        cm = cur.copy("COPY (SELECT 1) TO STDOUT")
        assert not isinstance(cm, psycopg_integration._TracedCopy)
        with cm as copy:
            assert b"".join(bytes(block) for block in copy) == b"1\n"


async def test_copy_misuse_fails_as_psycopg_does(postgres_dsn: str, trace: Trace) -> None:
    """A traced async COPY used with a plain ``with`` fails with the same TypeError as
    psycopg's own object (the traced wrapper offers only the protocol its cursor has)."""
    install("psycopg")
    async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
        cm = conn.cursor().copy("COPY (SELECT 1) TO STDOUT")
        with pytest.raises(TypeError, match="context manager"), cm:
            pass
        async with conn.cursor().copy("COPY (SELECT 1) TO STDOUT") as copy:
            assert b"".join([bytes(block) async for block in copy]) == b"1\n"

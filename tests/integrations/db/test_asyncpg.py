from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest

asyncpg = pytest.importorskip("asyncpg")

from asyncpg import connect_utils, cursor, pool, prepared_stmt  # noqa: E402

from lagless._guard import internal_errors, reset_internal_errors  # noqa: E402
from lagless._runtime import Runtime  # noqa: E402
from lagless._spans import _suppress_db, params_fingerprint  # noqa: E402
from lagless._trace import Trace, _current_trace  # noqa: E402
from lagless.integrations import asyncpg as asyncpg_integration  # noqa: E402
from lagless.integrations import get_integration  # noqa: E402
from lagless.integrations._db import rows_from_status  # noqa: E402
from lagless.integrations.asyncpg import ACQUIRE, RESET  # noqa: E402

from ._helpers import db_spans, pool_spans, tracing, unique_table  # noqa: E402
from .conftest import install  # noqa: E402

pytestmark = pytest.mark.postgres

Connection = asyncpg.Connection
Stmt = prepared_stmt.PreparedStatement
DO_EXECUTE = "_PreparedStatement__do_execute"


def _current() -> dict[str, Any]:
    return {
        "Connection._execute": vars(Connection)["_execute"],
        "Connection._executemany": vars(Connection)["_executemany"],
        "Connection.execute": vars(Connection)["execute"],
        "Connection.reset": vars(Connection)["reset"],
        "Connection._copy_out": vars(Connection)["_copy_out"],
        "Connection._copy_in": vars(Connection)["_copy_in"],
        "Connection.copy_records_to_table": vars(Connection)["copy_records_to_table"],
        "Stmt.do_execute": vars(Stmt)[DO_EXECUTE],
        "BaseCursor._bind_exec": vars(cursor.BaseCursor)["_bind_exec"],
        "BaseCursor._exec": vars(cursor.BaseCursor)["_exec"],
        "connect_utils._connect": connect_utils._connect,
        "Pool._acquire": vars(pool.Pool)["_acquire"],
    }


ORIGINALS = _current()


@pytest.fixture
async def conn(postgres_dsn: str) -> AsyncIterator[Any]:
    install("asyncpg")
    connection = await asyncpg.connect(postgres_dsn)
    yield connection
    await connection.close()


@pytest.fixture
async def table(conn: Any) -> AsyncIterator[str]:
    name = unique_table()
    await conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, name text)")
    await conn.execute(f"INSERT INTO {name} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    yield name
    await conn.execute(f"DROP TABLE IF EXISTS {name}")


async def test_every_query_path_recorded_with_rows(conn: Any, table: str) -> None:
    with tracing() as trace:
        fetched = await conn.fetch(f"SELECT id FROM {table} WHERE id > $1", 1)
        row = await conn.fetchrow(f"SELECT name FROM {table} WHERE id = $1", 1)
        value = await conn.fetchval(f"SELECT count(*) FROM {table}")
        status = await conn.execute(f"UPDATE {table} SET name = $1 WHERE id <= $2", "x", 2)
        simple = await conn.execute(f"DELETE FROM {table} WHERE id = 3")
        await conn.executemany(f"INSERT INTO {table} VALUES ($1, $2)", [(7, "g"), (8, "h")])
        stmt = await conn.prepare(f"SELECT id FROM {table} WHERE id >= $1 ORDER BY id")
        prepared = await stmt.fetch(2)
        async with conn.transaction():
            ids = [r["id"] async for r in conn.cursor(f"SELECT id FROM {table} ORDER BY id")]
            cur = await conn.cursor(f"SELECT id FROM {table} ORDER BY id")
            first_two = await cur.fetch(2)
        assert _suppress_db.get() is False
    assert [r["id"] for r in fetched] == [2, 3]
    assert row["name"] == "a" and value == 3
    assert status == "UPDATE 2" and simple == "DELETE 1"
    assert [r["id"] for r in prepared] == [2, 7, 8]
    assert ids == [1, 2, 7, 8] and [r["id"] for r in first_two] == [1, 2]

    by_name = [(s.name, s.get("rows")) for s in db_spans(trace)]
    assert by_name == [
        (f"SELECT id FROM {table} WHERE id > $1", 2),
        (f"SELECT name FROM {table} WHERE id = $1", 1),
        (f"SELECT count(*) FROM {table}", 1),
        (f"UPDATE {table} SET name = $1 WHERE id <= $2", 2),
        (f"DELETE FROM {table} WHERE id = 3", 1),
        (f"INSERT INTO {table} VALUES ($1, $2)", None),
        (f"SELECT id FROM {table} WHERE id >= $1 ORDER BY id", 3),
        ("BEGIN;", None),
        (f"SELECT id FROM {table} ORDER BY id", 4),  # the iterator: one prefetch trip
        (f"SELECT id FROM {table} ORDER BY id", 2),  # cursor.fetch(2)
        ("COMMIT;", None),
    ]
    spans = db_spans(trace)
    assert spans[0].get("params_hash") == params_fingerprint((1,))
    assert spans[2].get("params_hash") is None
    assert spans[5].get("many") is True
    for span in spans:
        assert span.get("driver") == "asyncpg" and span.get("db.system") == "postgresql"
        assert span.get("params") is None and span.get("on_loop") is None


async def test_params_kept_when_record_params(conn: Any, record_params: Runtime) -> None:
    with tracing() as trace:
        await conn.fetchval("SELECT $1::int + $2::int", 1, 2)
    (span,) = db_spans(trace)
    assert span.get("params") == (1, 2)


async def test_failing_query_recorded_exception_unchanged(conn: Any) -> None:
    with tracing() as trace:
        with pytest.raises(asyncpg.UndefinedTableError) as info:
            await conn.fetch("SELECT * FROM lagless_no_such_table")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await conn.execute("SELECT 1 / 0")
        assert await conn.fetchval("SELECT 1") == 1
    failed, failed_simple, ok = db_spans(trace)
    assert failed.get("error").startswith("UndefinedTableError: relation")
    assert "lagless_no_such_table" in str(info.value)
    assert failed_simple.get("error") == "DivisionByZeroError: division by zero"
    assert ok.get("error") is None and ok.get("rows") == 1


async def test_new_connection(postgres_dsn: str) -> None:
    install("asyncpg")
    before = await asyncpg.connect(postgres_dsn)
    try:
        with tracing() as trace:
            conn = await asyncpg.connect(postgres_dsn)
            await conn.fetchval("SELECT 1")
            await conn.fetchval("SELECT 2")
            await before.fetchval("SELECT 3")
            await conn.close()
    finally:
        await before.close()
    (connect,) = pool_spans(trace, "connect")
    assert connect.get("new_connection") is True and connect.get("driver") == "asyncpg"
    first, second, old = db_spans(trace)
    assert first.get("new_connection") is True
    assert second.get("new_connection") is None and old.get("new_connection") is None


async def test_nothing_recorded_without_active_trace(conn: Any) -> None:
    assert await conn.fetchval("SELECT 1") == 1
    with tracing() as trace:
        await conn.fetchval("SELECT 2")
    await conn.fetchval("SELECT 3")
    assert [s.name for s in trace.spans] == ["SELECT 2"]


@pytest.fixture
async def small_pool(postgres_dsn: str) -> AsyncIterator[Any]:
    install("asyncpg")
    created = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=1)
    yield created
    await created.close()


async def test_pool_wait_second_task_waits(small_pool: Any) -> None:
    async def hold() -> None:
        async with small_pool.acquire() as con:
            await con.execute("SELECT pg_sleep(0.02)")

    with tracing() as trace:
        await asyncio.gather(hold(), hold())
    sleeps = sorted(db_spans(trace), key=lambda s: s.end_ns)
    waits = sorted(pool_spans(trace, ACQUIRE), key=lambda s: s.end_ns)
    assert [s.name for s in sleeps] == ["SELECT pg_sleep(0.02)"] * 2
    assert len(waits) == 2
    assert waits[1].end_ns >= sleeps[0].end_ns  # only after the first task released it
    assert waits[1].get("wait_ms") == waits[1].duration_ns / 1_000_000
    # The pool's clean-up on release is one pool span, not statements the app never wrote.
    assert len(pool_spans(trace, RESET)) == 2


async def test_await_acquire_form(small_pool: Any) -> None:
    with tracing() as trace:
        con = await small_pool.acquire()
        try:
            assert await con.fetchval("SELECT 41 + 1") == 42
        finally:
            await small_pool.release(con)
    assert len(pool_spans(trace, ACQUIRE)) == 1
    assert [s.name for s in db_spans(trace)] == ["SELECT 41 + 1"]


async def test_pool_gather_in_one_trace(postgres_dsn: str) -> None:
    install("asyncpg")
    p = await asyncpg.create_pool(postgres_dsn, min_size=3, max_size=3)
    try:
        with tracing() as trace:
            results = await asyncio.gather(*(p.fetchval("SELECT $1::int", n) for n in (1, 2, 3)))
    finally:
        await p.close()
    assert results == [1, 2, 3]
    spans = db_spans(trace)
    assert [s.name for s in spans] == ["SELECT $1::int"] * 3
    assert sorted(s.get("params_hash") for s in spans) == sorted(
        params_fingerprint((n,)) for n in (1, 2, 3)
    )
    assert len(pool_spans(trace, ACQUIRE)) == 3


async def test_concurrent_traces_never_mix(postgres_dsn: str) -> None:
    install("asyncpg")
    p = await asyncpg.create_pool(postgres_dsn, min_size=2, max_size=2)

    async def request(n: int) -> Trace:
        trace = Trace()
        _current_trace.set(trace)
        async with p.acquire() as con:
            for i in range(5):
                await con.fetchval(f"SELECT {n} * 100 + {i}")
                await asyncio.sleep(0)
        return trace

    try:
        first, second = await asyncio.gather(request(1), request(2))
    finally:
        await p.close()
    assert [s.name for s in db_spans(first)] == [f"SELECT 1 * 100 + {i}" for i in range(5)]
    assert [s.name for s in db_spans(second)] == [f"SELECT 2 * 100 + {i}" for i in range(5)]


def test_rows_from_status() -> None:
    assert rows_from_status("INSERT 0 3") == 3
    assert rows_from_status(b"UPDATE 2") == 2
    assert rows_from_status("SELECT 0") == 0
    assert rows_from_status("CREATE TABLE") is None
    assert rows_from_status(None) is None


async def test_install_idempotent_and_uninstall_restores(postgres_dsn: str) -> None:
    integration = get_integration("asyncpg")
    integration.install()
    integration.install()
    assert _current()["Connection._execute"] is not ORIGINALS["Connection._execute"]
    conn = await asyncpg.connect(postgres_dsn)
    try:
        with tracing() as trace:
            await conn.fetchval("SELECT 1")
        assert len(db_spans(trace)) == 1
        integration.uninstall()
        integration.uninstall()
        assert _current() == ORIGINALS
        with tracing() as trace:
            await conn.fetchval("SELECT 1")
            await conn.execute("SELECT 2")
        assert trace.spans == []
    finally:
        await conn.close()


async def test_internal_error_never_fails_the_query(
    conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("lagless bug")

    with tracing() as trace:
        monkeypatch.setattr(Trace, "add_span", broken)
        # The success path builds its span inline (no add_span): break that too.
        monkeypatch.setattr(asyncpg_integration, "Span", broken)
        assert await conn.fetchval("SELECT 40 + 2") == 42
        with pytest.raises(asyncpg.DivisionByZeroError):
            await conn.fetchval("SELECT 1 / 0")
        monkeypatch.undo()
    assert trace.spans == []
    assert internal_errors.get("asyncpg:record") == 2
    reset_internal_errors()


async def test_copy_methods_recorded(conn: Any, table: str) -> None:
    """Every COPY method is one ``db`` span with ``copy=True`` and the rows from its status."""
    out = io.BytesIO()
    with tracing() as trace:
        await conn.copy_from_table(table, output=out)
        await conn.copy_from_query(f"SELECT id FROM {table} WHERE id > $1", 1, output=io.BytesIO())
        source = io.BytesIO(b"10\tj\n11\tk\n")
        await conn.copy_to_table(table, source=source, columns=["id", "name"])
        await conn.copy_records_to_table(table, records=[(20, "t"), (21, "u"), (22, "v")])
    assert out.getvalue().splitlines() == [b"1\ta", b"2\tb", b"3\tc"]
    assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 8
    spans = db_spans(trace)
    # copy_from_query with arguments first has the server quote them (its own round trip,
    # recorded as the query it is).
    assert [s.name for s in spans if not s.get("copy")] == [
        'SELECT quote_literal($1::"pg_catalog"."int4"::text)'
    ]
    table_out, query_out, copy_in, records_in = [s for s in spans if s.get("copy")]
    assert table_out.name.startswith(f'COPY "{table}" TO STDOUT') and table_out.get("rows") == 3
    assert query_out.name.startswith(f"COPY (SELECT id FROM {table} WHERE id > '1')")
    assert query_out.get("rows") == 2
    assert copy_in.name.startswith(f'COPY "{table}"("id", "name") FROM STDIN')
    assert copy_in.get("rows") == 2
    assert records_in.name == f'COPY "{table}" FROM STDIN (FORMAT binary)'
    assert records_in.get("rows") == 3
    for span in (table_out, query_out, copy_in, records_in):
        assert span.get("copy") is True and span.get("driver") == "asyncpg"


async def test_copy_error_recorded_and_raised(conn: Any, table: str) -> None:
    with tracing() as trace, pytest.raises(asyncpg.UniqueViolationError):
        await conn.copy_records_to_table(table, records=[(1, "duplicate key")])
    (span,) = db_spans(trace)
    assert span.get("copy") is True
    assert span.get("error").startswith("UniqueViolationError")


def test_copy_records_statement_is_asyncpgs_spelling() -> None:
    from lagless.integrations.asyncpg import _copy_records_statement

    assert _copy_records_statement("t", None, None) == 'COPY "t" FROM STDIN (FORMAT binary)'
    assert (
        _copy_records_statement('we"ird', "s", ["a", "b"])
        == 'COPY "s"."we""ird"("a", "b") FROM STDIN (FORMAT binary)'
    )

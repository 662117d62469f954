from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from lagless._runtime import Runtime
from lagless._spans import params_fingerprint
from lagless._trace import Trace
from lagless.integrations import get_integration

from ._helpers import db_spans, pool_spans, tracing
from .conftest import install

ORIGINAL_CONNECT = sqlite3.connect


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    path = str(tmp_path / "app.db")
    conn = ORIGINAL_CONNECT(path)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO items (name) VALUES (?)", [("a",), ("b",), ("c",)])
    conn.commit()
    conn.close()
    return path


def _workload(conn: sqlite3.Connection) -> list[Any]:
    """The same statements, to compare results with and without capture."""
    out: list[Any] = []
    out.append(conn.execute("SELECT id, name FROM items WHERE id > ?", (1,)).fetchall())
    cur = conn.cursor()
    cur.execute("UPDATE items SET name = upper(name) WHERE id <= ?", (2,))
    out.append(cur.rowcount)
    out.append(list(conn.execute("SELECT name FROM items ORDER BY id")))
    out.append(conn.execute("SELECT count(*) FROM items").fetchone())
    return out


def test_statements_rows_and_redacted_params(db_path: str, trace: Trace) -> None:
    install("sqlite3")
    conn = sqlite3.connect(db_path)
    cur = conn.execute("SELECT id, name FROM items WHERE id > ?", (1,))
    assert cur.fetchone() == (2, "b")
    assert cur.fetchall() == [(3, "c")]
    conn.execute("UPDATE items SET name = ? WHERE id = ?", ("z", 1))
    conn.executemany("INSERT INTO items (name) VALUES (?)", [("d",), ("e",)])
    for _ in conn.execute("SELECT name FROM items"):
        pass
    many = conn.cursor()
    many.execute("SELECT id FROM items")
    assert len(many.fetchmany(2)) == 2
    many.close()
    conn.executescript("CREATE TABLE other (x); DROP TABLE other;")
    conn.close()

    spans = db_spans(trace)
    assert [s.name for s in spans] == [
        "SELECT id, name FROM items WHERE id > ?",
        "UPDATE items SET name = ? WHERE id = ?",
        "INSERT INTO items (name) VALUES (?)",
        "SELECT name FROM items",
        "SELECT id FROM items",
        "CREATE TABLE other (x); DROP TABLE other;",
    ]
    select, update, insert, iterated, fetched_many, script = spans
    assert select.get("rows") == 2  # counted as fetched: one by fetchone, one by fetchall
    assert update.get("rows") == 1
    assert insert.get("rows") == 2 and insert.get("many") is True
    assert iterated.get("rows") == 5
    assert fetched_many.get("rows") == 2  # only what was read
    assert script.get("rows") is None
    for span in spans:
        assert span.get("driver") == "sqlite3"
        assert span.get("db.system") == "sqlite"
        assert span.get("params") is None  # redacted by default
        assert span.get("on_loop") is None
        assert span.duration_ns >= 0
    assert select.get("params_hash") == params_fingerprint((1,))
    assert update.get("params_hash") == params_fingerprint(("z", 1))
    assert iterated.get("params_hash") is None


def test_params_kept_when_record_params(db_path: str, trace: Trace, record_params: Runtime) -> None:
    install("sqlite3")
    conn = sqlite3.connect(db_path)
    conn.execute("SELECT name FROM items WHERE id = ?", (3,)).fetchall()
    conn.close()
    (span,) = db_spans(trace)
    assert span.get("params") == (3,)
    assert span.get("params_hash") == params_fingerprint((3,))


def test_results_identical_to_uninstrumented(db_path: str, tmp_path: Path) -> None:
    copy = str(tmp_path / "copy.db")
    src = ORIGINAL_CONNECT(db_path)
    dst = ORIGINAL_CONNECT(copy)
    src.backup(dst)
    src.close()
    dst.close()
    plain = ORIGINAL_CONNECT(db_path)
    expected = _workload(plain)
    plain.close()

    install("sqlite3")
    with tracing() as trace:
        conn = sqlite3.connect(copy)
        assert isinstance(conn, sqlite3.Connection)
        assert isinstance(conn.cursor(), sqlite3.Cursor)
        assert _workload(conn) == expected
        conn.close()
    assert len(db_spans(trace)) == 4


def test_failing_query_recorded_and_exception_unchanged(db_path: str, trace: Trace) -> None:
    install("sqlite3")
    conn = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.OperationalError, match="no such table: missing") as info:
        conn.execute("SELECT * FROM missing")
    with pytest.raises(sqlite3.IntegrityError):
        conn.cursor().execute("INSERT INTO items (id, name) VALUES (1, 'dup')")
    conn.close()
    first, second = db_spans(trace)
    assert first.name == "SELECT * FROM missing"
    assert first.get("error") == "OperationalError: no such table: missing"
    assert str(info.value) == "no such table: missing"
    assert second.get("error").startswith("IntegrityError: UNIQUE constraint failed")


def test_new_connection_flags_connect_span_and_first_statement(db_path: str) -> None:
    install("sqlite3")
    before = sqlite3.connect(db_path)  # opened outside any request
    with tracing() as trace:
        conn = sqlite3.connect(db_path)
        conn.execute("SELECT 1").fetchall()
        conn.execute("SELECT 2").fetchall()
        before.execute("SELECT 3").fetchall()
    conn.close()
    before.close()
    (connect,) = pool_spans(trace, "connect")
    assert connect.get("new_connection") is True
    assert connect.get("driver") == "sqlite3"
    first, second, old = db_spans(trace)
    assert first.get("new_connection") is True
    assert second.get("new_connection") is None
    assert old.get("new_connection") is None


def test_failed_connect_recorded(tmp_path: Path, trace: Trace) -> None:
    install("sqlite3")
    missing = tmp_path / "no" / "such" / "dir.db"
    with pytest.raises(sqlite3.OperationalError):
        sqlite3.connect(str(missing))
    (connect,) = pool_spans(trace, "connect")
    assert connect.get("error").startswith("OperationalError")


def test_nothing_recorded_without_active_trace(db_path: str) -> None:
    install("sqlite3")
    conn = sqlite3.connect(db_path)
    cur = conn.execute("SELECT * FROM items")
    assert len(cur.fetchall()) == 3
    with tracing() as trace:
        conn.execute("SELECT 1").fetchall()
    conn.execute("SELECT 2").fetchall()
    conn.close()
    assert [s.name for s in trace.spans] == ["SELECT 1"]
    assert type(cur) is sqlite3.Cursor  # untraced shortcuts run at C speed, uncounted


def test_cursor_reused_outside_trace_stops_counting(db_path: str) -> None:
    install("sqlite3")
    conn = sqlite3.connect(db_path)
    cur = conn.cursor()
    with tracing() as trace:
        cur.execute("SELECT * FROM items")
        cur.fetchall()
    cur.execute("SELECT * FROM items")
    cur.fetchall()
    conn.close()
    (span,) = db_spans(trace)
    assert span.get("rows") == 3


def test_for_loops_counted_at_c_speed(db_path: str, trace: Trace) -> None:
    """A ``for`` loop over a counted cursor runs on C iterators and adds its rows when the
    loop ends, is left and the cursor re-executed, or the cursor is closed; mixed with
    ``fetchone``/``next`` every row read is counted once."""
    install("sqlite3")
    conn = sqlite3.connect(db_path)
    full = conn.execute("SELECT id FROM items")
    loop = iter(full)
    assert type(loop).__module__ == "itertools"  # no Python frame a row
    assert [row[0] for row in loop] == [1, 2, 3]
    left = conn.cursor()
    left.execute("SELECT id FROM items")
    for _row in left:
        break
    left.execute("UPDATE items SET name = name WHERE id = 1")  # folds the loop's 1 row
    mixed = conn.execute("SELECT id FROM items")
    assert mixed.fetchone() == (1,)
    assert next(mixed) == (2,)
    assert list(mixed) == [(3,)]
    closed = conn.execute("SELECT id FROM items")
    it = iter(closed)
    next(it)
    next(it)
    closed.close()
    assert list(iter(conn.execute("SELECT id FROM items WHERE id > 5"))) == []
    conn.close()
    spans = db_spans(trace)
    assert [s.get("rows") for s in spans] == [3, 1, 1, 3, 2, 0]


def test_user_factory_kept_and_its_overrides_honoured(db_path: str, trace: Trace) -> None:
    calls: list[str] = []

    class Audited(sqlite3.Connection):
        def execute(self, *args: Any) -> sqlite3.Cursor:
            calls.append(args[0])
            return super().execute(*args)

    install("sqlite3")
    conn = sqlite3.connect(db_path, factory=Audited)
    assert isinstance(conn, Audited)
    assert conn.execute("SELECT count(*) FROM items").fetchone() == (3,)
    positional = sqlite3.connect(db_path, 5.0, 0, "", True, Audited)
    assert isinstance(positional, Audited)
    conn.close()
    positional.close()
    assert calls == ["SELECT count(*) FROM items"]
    (span,) = db_spans(trace)
    assert span.name == "SELECT count(*) FROM items"


async def test_sync_call_on_event_loop_is_flagged(db_path: str, trace: Trace) -> None:
    install("sqlite3")
    conn = sqlite3.connect(db_path)
    conn.execute("SELECT 1").fetchall()
    conn.close()
    (span,) = db_spans(trace)
    assert span.get("on_loop") is True
    assert pool_spans(trace, "connect")[0].get("on_loop") is True


def test_two_concurrent_traces_never_mix(db_path: str) -> None:
    install("sqlite3")
    barrier = threading.Barrier(2)
    traces: dict[int, Trace] = {}

    def request(n: int) -> None:
        with tracing() as trace:
            traces[n] = trace
            conn = sqlite3.connect(db_path, check_same_thread=False)
            for i in range(20):
                if i == 5:
                    barrier.wait()
                conn.execute(f"SELECT {n}, {i}").fetchall()
            conn.close()

    threads = [threading.Thread(target=request, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in (1, 2):
        names = [s.name for s in db_spans(traces[n])]
        assert names == [f"SELECT {n}, {i}" for i in range(20)]


def test_install_is_idempotent_and_uninstall_restores(db_path: str) -> None:
    original = sqlite3.connect
    original_dbapi = sqlite3.dbapi2.connect
    integration = get_integration("sqlite3")
    integration.install()
    integration.install()
    assert sqlite3.connect is not original
    assert sqlite3.dbapi2.connect is sqlite3.connect
    kept = sqlite3.connect(db_path)
    with tracing() as trace:
        kept.execute("SELECT 1").fetchall()
    assert len(db_spans(trace)) == 1  # recorded once, not once per install()

    integration.uninstall()
    integration.uninstall()
    assert sqlite3.connect is original
    assert sqlite3.dbapi2.connect is original_dbapi
    with tracing() as trace:
        fresh = sqlite3.connect(db_path)
        assert type(fresh) is sqlite3.Connection
        fresh.execute("SELECT 1").fetchall()
        kept.execute("SELECT 2").fetchall()  # opened while installed: silent now
        kept.cursor().execute("SELECT 3").fetchall()
    fresh.close()
    kept.close()
    assert trace.spans == []

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import sqlite3
from typing import Any

import pytest

from lagless._guard import internal_errors, reset_internal_errors
from lagless._runtime import Runtime
from lagless._spans import params_fingerprint
from lagless._trace import Trace
from lagless.integrations import _db

from ._helpers import db_spans, tracing
from .conftest import install


class Base:
    def hello(self) -> str:
        return "base"


class Child(Base):
    def own(self) -> str:
        return "own"


def test_patches_restore_exactly() -> None:
    patches = _db.Patches()
    before_own = vars(Child)["own"]
    assert patches.patch(Child, "own", lambda self: "patched") is before_own
    assert patches.patch(Child, "hello", lambda self: "patched") is Base.hello
    assert Child().own() == Child().hello() == "patched"
    patches.restore()
    assert vars(Child)["own"] is before_own
    assert "hello" not in vars(Child)  # inherited before, inherited again
    assert Child().hello() == "base"


def test_new_connection_once_and_only_for_its_trace() -> None:
    class Conn:
        pass

    a, b, c = Conn(), Conn(), Conn()
    first, second = Trace(), Trace()
    _db.mark_new_connection(a, first)
    _db.mark_new_connection(b, first)
    assert _db.take_new_connection(a, second) is False  # opened in another request
    assert _db.take_new_connection(b, first) is True
    assert _db.take_new_connection(b, first) is False  # only its first statement
    _db.mark_new_connection(c, first)
    del c
    gc.collect()
    assert _db._fresh == {}  # a connection never used does not linger
    _db.mark_new_connection(1, first)  # not weak-referenceable: silently not tracked
    assert _db._fresh == {}


def test_add_params_redacts_and_bounds_executemany(record_params: Runtime) -> None:
    attrs: dict[str, Any] = {}
    _db.add_params(attrs, (1, "x"))
    assert attrs == {"params_hash": params_fingerprint((1, "x")), "params": (1, "x")}
    generated: dict[str, Any] = {}
    rows = ((i,) for i in range(3))
    _db.add_params(generated, rows, many=True)
    assert generated == {}
    assert next(rows) == (0,)  # the caller's generator was not consumed
    huge: dict[str, Any] = {}
    _db.add_params(huge, [(i,) for i in range(_db._MAX_MANY + 1)], many=True)
    assert huge == {}


def test_params_redacted_by_default() -> None:
    attrs: dict[str, Any] = {}
    _db.add_params(attrs, {"email": "a@example.com"})
    assert set(attrs) == {"params_hash"}


def test_rows_from_status_and_statement_text() -> None:
    assert _db.rows_from_status("INSERT 0 12") == 12
    assert _db.rows_from_status("BEGIN") is None
    assert _db.statement_text("SELECT 1") == "SELECT 1"
    assert _db.statement_text(b"SELECT 2") == "SELECT 2"
    assert _db.statement_text(3, lambda q: f"SELECT {q}") == "SELECT 3"
    assert _db.statement_text(4, lambda q: 1 / 0) == "4"  # type: ignore[arg-type,return-value]


async def test_marked_coroutine_functions() -> None:
    async def original() -> int:
        return 1

    def wrapper() -> Any:
        return original()

    marked = _db.mark_coroutine_function(wrapper)
    assert marked is wrapper
    assert asyncio.iscoroutinefunction(marked) or inspect.iscoroutinefunction(marked)
    assert await marked() == 1


def test_internal_error_never_fails_the_query(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install("sqlite3")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("lagless bug")

    conn = sqlite3.connect(":memory:")
    with tracing() as trace:
        monkeypatch.setattr(Trace, "add_span", broken)
        # The sqlite3 success path appends its span inline (no add_span): break the
        # attribute builder it calls (_db.statement_attrs) too.
        monkeypatch.setattr(_db, "_get_running_loop", broken)
        with caplog.at_level(logging.ERROR, logger="lagless"):
            assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
            with pytest.raises(sqlite3.OperationalError):  # the user's own error still raises
                conn.execute("SELECT * FROM missing")
        monkeypatch.undo()
    conn.close()
    assert db_spans(trace) == []
    assert sum(internal_errors.values()) >= 1
    assert "internal error" in caplog.text
    reset_internal_errors()

from __future__ import annotations

import pytest

from lagless._sql import fingerprint, is_select, redact, statement_verb


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ('SELECT * FROM "book" WHERE author_id = 7', "select * from book where author_id=%s"),
        ("SELECT id FROM t WHERE id IN (1, 2, 3)", "SELECT id FROM t WHERE id IN (?)"),
        ("select  x\n from `t` where name = 'bob'", "SELECT x FROM t WHERE name = $1"),
        ("SELECT a FROM t WHERE b = :b -- comment", "SELECT a FROM t WHERE b = ?;"),
    ],
)
def test_fingerprint_folds_what_varies(a: str, b: str) -> None:
    assert fingerprint(a) == fingerprint(b)


def test_fingerprint_keeps_what_matters() -> None:
    assert fingerprint("SELECT a FROM t WHERE b = 1") != fingerprint("SELECT a FROM u WHERE b = 1")
    assert fingerprint("SELECT a FROM t1 WHERE b = 1") != fingerprint("SELECT a FROM t2 WHERE b=1")


def test_redact_literals() -> None:
    assert redact("SELECT * FROM u WHERE email = 'a@b.c' AND age > 30") == (
        "SELECT * FROM u WHERE email = ? AND age > ?"
    )
    assert redact("SELECT * FROM t2 WHERE x = 'it''s'") == "SELECT * FROM t2 WHERE x = ?"


def test_verbs() -> None:
    assert statement_verb("  /* hi */ select 1") == "SELECT"
    assert is_select("WITH x AS (SELECT 1) SELECT * FROM x")
    assert not is_select("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x")
    assert not is_select("UPDATE t SET a = 1")
    assert is_select("(SELECT 1)")


def test_long_statements_are_fingerprinted_without_being_cached() -> None:
    """Regression: every distinct statement went into a 4096-entry cache, however long, so
    bulk INSERTs with inline values could pin gigabytes."""
    from lagless import _sql

    _sql._cached_fingerprint.cache_clear()
    values = ", ".join(f"({i}, 'name {i}')" for i in range(2000))
    bulk = f"INSERT INTO t (id, name) VALUES {values}"
    assert len(bulk) > _sql._CACHED_MAX_LEN
    assert fingerprint(bulk) == "insert into t(id,name)values(?,?)"
    assert fingerprint("SELECT 1") == "select ?"
    assert _sql._cached_fingerprint.cache_info().currsize == 1

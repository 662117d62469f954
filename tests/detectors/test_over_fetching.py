from __future__ import annotations

from lagless.detectors import DetectorSettings, analyze
from lagless.detectors.over_fetching import select_columns

from ._build import db, make_trace


def only(trace, mode="doctor", **kw):
    findings = [f for f in analyze([trace], mode=mode, **kw) if f.code == "over-fetching"]
    return findings


def test_unbounded_list_query():
    trace = make_trace("/books", response_bytes=900_000)
    db(trace, "SELECT book.id, book.title FROM book", 0, 40, rows=5000)
    [finding] = only(trace)
    assert finding.title == "Unbounded list query: 5000 rows from book without LIMIT"
    assert not finding.potential and finding.severity == "medium"
    assert finding.evidence[0]["reasons"] == ["unbounded"]


def test_limited_query_is_fine():
    trace = make_trace("/books", response_bytes=900_000)
    db(trace, "SELECT book.id, book.title FROM book LIMIT %s", 0, 40, rows=5000, params_hash=1)
    assert only(trace) == []


def test_rows_the_response_does_not_use():
    trace = make_trace("/books/count", response_bytes=40)
    db(
        trace,
        "SELECT book.id, book.price FROM book WHERE book.shop_id = %s LIMIT 20000",
        0,
        60,
        rows=20000,
        params_hash=1,
    )
    [finding] = only(trace)
    assert finding.title == "20000 rows read from book for a 40-byte response"
    assert finding.severity == "high"
    assert "aggregate()" in finding.fix and "func.count()" in finding.fix


def test_database_aggregates_are_not_unused_rows():
    trace = make_trace("/books/count", response_bytes=40)
    db(trace, "SELECT count(*) FROM book LIMIT 1", 0, 60, rows=1)
    assert only(trace) == []


def test_select_star_is_potential():
    trace = make_trace("/books/{id}", response_bytes=300)
    db(trace, "SELECT * FROM book WHERE id = %s", 0, 1, rows=1, params_hash=1)
    [finding] = only(trace)
    assert finding.potential and finding.title == "Potential over-fetching: SELECT * from book"
    assert finding.severity == "low"


def test_count_star_is_not_select_star():
    trace = make_trace("/n", response_bytes=10)
    db(trace, "SELECT COUNT(*) FROM book WHERE shop_id = %s", 0, 1, rows=1, params_hash=1)
    assert only(trace) == []


def test_wide_select_list():
    cols = ", ".join(f"t.c{i}" for i in range(25))
    trace = make_trace("/wide", response_bytes=300)
    db(
        trace,
        f"SELECT {cols}, coalesce(t.a, t.b) FROM t WHERE t.id = %s",
        0,
        1,
        rows=1,
        params_hash=1,
    )
    [finding] = only(trace)
    assert finding.title == "Potential over-fetching: 26 columns read from t"
    assert only(trace, settings=DetectorSettings(wide_select_columns=30)) == []


def test_production_needs_time():
    trace = make_trace("/books", response_bytes=900_000)
    db(trace, "SELECT book.id FROM book", 0, 10, rows=5000)
    assert only(trace, mode="production") == []
    db(trace, "SELECT author.id FROM author", 20, 70, rows=5000)
    [finding] = only(trace, mode="production")
    assert "author" in finding.title


def test_select_columns_skips_commas_in_calls():
    assert select_columns("select a,coalesce(b,c),d from t") == 3


def test_whole_table_select_behind_a_large_response_when_rows_are_unknown():
    trace = make_trace("/books", response_bytes=1_600_000)
    db(trace, "SELECT book.id, book.title FROM book", 0, 40)
    db(trace, "SELECT shop.name FROM shop WHERE shop.id = ?", 41, 1, params_hash=1)
    [finding] = only(trace)
    assert finding.potential and finding.severity == "medium"
    assert finding.title == (
        "Potential unbounded list query: all of book without LIMIT or WHERE, for a 1600 KB response"
    )
    small = make_trace("/books", response_bytes=2_000)
    db(small, "SELECT book.id, book.title FROM book", 0, 40)
    assert only(small) == []

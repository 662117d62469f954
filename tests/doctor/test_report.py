"""The doctor's reports: JSON contract, self-contained HTML, terminal text."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from lagless._trace import Trace
from lagless.detectors import Finding
from lagless.doctor._report import DoctorReport
from lagless.doctor._runner import RunOptions, RunResult, Skipped
from lagless.doctor._stats import percentile, route_stats

_VOID = {"meta", "link", "br", "img", "input", "hr", "col", "area", "base", "source", "wbr"}


def _trace(route: str, ms: float, *, queries: int = 0, path: str | None = None) -> Trace:
    t = Trace("GET", path or route, route=route, start_ns=1_000_000_000)
    t.status = 200
    t.response_bytes = 1000
    for i in range(queries):
        start = t.start_ns + i * 100_000
        t.add_span("db", f"SELECT * FROM book WHERE id = {i}", start, start + 50_000)
    t.add_span("middleware", "<script>alert(1)</script>", t.start_ns, t.start_ns + 10_000)
    t.duration_ns = int(ms * 1_000_000)
    return t


def _report() -> DoctorReport:
    traces = [_trace("/books", ms, queries=3) for ms in (10, 20, 30, 40, 100)]
    traces += [_trace("/a/{x}<b>", 5.0, path="/a/1")]
    finding = Finding(
        code="n-plus-one",
        title="N+1 queries: 3 similar SELECTs on <book>",
        severity="high",
        route="/books",
        method="GET",
        evidence=({"statement": "SELECT * FROM book WHERE id = ?", "count": 3, "total_ms": 0.15},),
        cost_ms=0.1,
        fix="Use selectinload(Author.books) & friends",
        requests=5,
    )
    run = RunResult(
        target="app:app",
        traces=traces,
        plan=[],
        skipped=[Skipped("DELETE", "/books/{id}", "not a safe method; name it in [params]")],
        failures=["GET /boom: HTTP 500"],
        limited=False,
        elapsed_s=1.5,
        options=RunOptions(runs=5),
    )
    return DoctorReport.build(run, [finding])


def test_percentiles_interpolate() -> None:
    values = [10.0, 20.0, 30.0, 40.0, 100.0]
    assert percentile(values, 0.5) == 30.0
    assert percentile(values, 0.95) == pytest.approx(88.0)
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) == 0.0


def test_route_stats_pick_the_median_request() -> None:
    rows = {r.route: r for r in route_stats(_report().run.traces)}
    books = rows["/books"]
    assert (books.requests, books.p50_ms, books.max_ms) == (5, 30.0, 100.0)
    assert books.representative.duration_ms == 30.0
    assert books.mean_queries == 3
    assert list(rows) == ["/books", "/a/{x}<b>"]  # slowest p95 first


def test_json_has_the_documented_shape(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    _report().write_json(path)
    doc = json.loads(path.read_text())
    finding = doc["findings"][0]
    for key in ("code", "severity", "route", "title", "evidence", "cost_ms", "fix"):
        assert key in finding
    assert finding["code"] == "n-plus-one" and finding["evidence"][0]["count"] == 3
    route = doc["routes"][0]
    assert route["route"] == "/books"
    assert (route["p50_ms"], route["p95_ms"], route["p99_ms"]) == (30.0, 88.0, 97.6)  # rounded
    assert doc["summary"]["high"] == 1
    assert doc["skipped"][0]["route"] == "/books/{id}"


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_valid_escaped_and_self_contained(tmp_path: Path) -> None:
    path = tmp_path / "r.html"
    _report().write_html(path)
    text = path.read_text()
    assert text.startswith("<!doctype html>")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    # Opens offline: nothing is loaded from anywhere.
    for tag, attrs in checker.tags:
        assert "src" not in attrs, tag
        assert tag != "link"
        assert not any(v and "//" in v for k, v in attrs.items() if k in ("href", "action")), tag
    assert "@import" not in text and "url(" not in text
    # Every value from the app is escaped (no stray tag from a route or a span name).
    assert [t for t, _ in checker.tags].count("script") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    body = "".join(checker.text)
    for expected in ("n-plus-one", "selectinload(Author.books) & friends", "/a/{x}<b>", "p95"):
        assert expected in body
    assert "SELECT * FROM book WHERE id = ?" in body  # the waterfall redacts literals


def test_terminal_report_lists_findings_and_escapes_markup() -> None:
    console = Console(record=True, width=200)
    _report().print(console)
    out = console.export_text()
    assert "n-plus-one" in out and "GET /books" in out
    assert "fix: Use selectinload(Author.books) & friends" in out
    assert "name it in [params]" in out  # rich markup in app text is printed, not eaten
    assert "GET /boom: HTTP 500" in out
    assert "Summary: 1 high" in out
    # Counts agree in number, and evidence times read as the total of all occurrences.
    assert "6 measured requests over 2 routes" in out
    assert "Skipped 1 route:" in out
    assert "3x, 0.1 ms total: SELECT * FROM book WHERE id = ?" in out


def test_unknown_evidence_values_are_not_printed_as_none() -> None:
    from lagless.doctor._html import _evidence_table
    from lagless.doctor._report import evidence_line

    item = {"statement": "SELECT 1", "count": 1, "role": "parent", "rows": None}
    assert evidence_line(item) == "1x: SELECT 1  (role=parent)"
    assert "None" not in _evidence_table((item,)) and "<th>rows</th>" not in _evidence_table(
        (item,)
    )
    both = _evidence_table((item, {"statement": "SELECT 2", "rows": 3}))
    assert "<th>rows</th>" in both and "None" not in both


def test_terminal_report_singular_counts() -> None:
    report = _report()
    report.run.traces = report.run.traces[:1]
    report.routes = report.routes[:1]
    console = Console(record=True, width=200)
    report.print(console)
    assert "1 measured request over 1 route in" in console.export_text()


def test_no_findings_says_so() -> None:
    report = _report()
    report.findings = []
    console = Console(record=True, width=120)
    report.print(console)
    assert "No findings." in console.export_text()
    assert "No findings." in __import__("lagless.doctor._html", fromlist=["x"]).render_html(report)

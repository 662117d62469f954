"""`lagless doctor`, `lagless analyze` and `lagless example` from the command line."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from lagless._trace import Trace
from lagless.cli import main
from lagless.detectors import severity_at_least

APP = """
import sqlite3
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

DB = {db!r}

async def authors(request):
    conn = sqlite3.connect(DB)
    try:
        rows = conn.execute("SELECT id, name FROM author").fetchall()
        out = []
        for author_id, name in rows:
            n = conn.execute("SELECT count(*) FROM book WHERE author_id = ?", (author_id,))
            out.append({{"name": name, "books": n.fetchone()[0]}})
    finally:
        conn.close()
    return JSONResponse(out)

async def health(request):
    return JSONResponse({{"ok": True}}, headers={{"Cache-Control": "no-store"}})

app = Starlette(routes=[Route("/authors", authors), Route("/health", health)])
"""


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    import sqlite3

    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE author (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("CREATE TABLE book (id INTEGER PRIMARY KEY, author_id INTEGER)")
    conn.executemany("INSERT INTO author VALUES (?, ?)", [(i, f"a{i}") for i in range(8)])
    conn.executemany("INSERT INTO book VALUES (?, ?)", [(i, i % 8) for i in range(40)])
    conn.commit()
    conn.close()
    name = f"shopapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(APP.format(db=str(db)))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


@pytest.mark.parametrize("threshold", ["info", "critical"])
def test_doctor_module_target_writes_reports_and_exit_code(
    app_module: str, tmp_path: Path, threshold: str, capsys: Any
) -> None:
    out_json, out_html = tmp_path / "d.json", tmp_path / "d.html"
    code = main(
        [
            "doctor",
            f"{app_module}:app",
            "--runs",
            "2",
            "--quiet",
            "--json",
            str(out_json),
            "--html",
            str(out_html),
            "--fail-on",
            threshold,
        ]
    )
    doc = json.loads(out_json.read_text())
    codes = {f["code"] for f in doc["findings"]}
    assert "n-plus-one" in codes
    assert {r["route"] for r in doc["routes"]} == {"/authors", "/health"}
    assert all(r["requests"] == 2 for r in doc["routes"])
    expected = 1 if any(severity_at_least(f["severity"], threshold) for f in doc["findings"]) else 0
    assert code == expected
    assert out_html.read_text().startswith("<!doctype html>")
    out = capsys.readouterr().out
    assert "n-plus-one" in out and "/authors" in out


def test_doctor_disable_switches_a_detector_off(app_module: str, tmp_path: Path) -> None:
    out_json = tmp_path / "d.json"
    main(
        [
            "doctor",
            f"{app_module}:app",
            "--runs",
            "1",
            "--quiet",
            "--json",
            str(out_json),
            "--disable",
            "n-plus-one",
        ]
    )
    assert "n-plus-one" not in {f["code"] for f in json.loads(out_json.read_text())["findings"]}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["doctor", "nosuchmodule_xyz:app"], "cannot import 'nosuchmodule_xyz'"),
        (["doctor", "json:nothing_here"], "has no attribute 'nothing_here'"),
        (["doctor", "justamodule"], "expected TARGET as 'module:app'"),
        (["doctor", "x:app", "--django", "s"], "either TARGET or --django"),
        (["doctor", "x:app", "--runs", "0"], "--runs"),
        (["doctor", "x:app", "--scenario", "missing.toml"], "cannot read scenario"),
        (["analyze", "missing.json"], "cannot read"),
        (["doctor", "http://[::1"], "bad URL"),
        (["doctor", "http://host:99999"], "bad URL"),
        (["doctor", "ftp://host/"], "an http:// URL"),
        (["bench", "http://[::1", "--rate", "1"], "bad URL"),
        (["bench", "ftp://host/", "--rate", "1"], "an http:// URL"),
        (["bench", "http://h:1", "--rate", "1", "--late-tolerance", "-1"], "--late-tolerance"),
    ],
)
def test_bad_input_is_a_clear_error(argv: list[str], message: str, capsys: Any) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_server_is_an_error_not_a_clean_report(capsys: Any) -> None:
    # Regression: with nothing listening, every request failed and the doctor printed
    # "no findings" with exit code 0, so `--fail-on` passed a CI gate it never examined.
    import socket

    with socket.socket() as sock:  # a loopback port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = main(["doctor", f"http://127.0.0.1:{port}", "--quiet", "--fail-on", "high"])
    assert code == 2
    assert "could not exercise" in capsys.readouterr().err


def test_an_app_raising_out_of_its_call_is_reported_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # Regression: a bare WSGI app raising before start_response escaped httpx's transport
    # and the run ended in a traceback.
    name = f"brokenapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "def app(environ, start_response):\n    raise RuntimeError('db is down')\n"
    )
    (tmp_path / "s.toml").write_text('[[requests]]\npath = "/x"\n')
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["doctor", f"{name}:app", "--scenario", "s.toml", "--quiet"])
    finally:
        sys.modules.pop(name, None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))
    assert code == 2
    assert "the app raised RuntimeError: db is down" in capsys.readouterr().err


def test_analyze_reads_lagless_exports(tmp_path: Path, capsys: Any) -> None:
    from lagless._export import export_traces

    traces = []
    for n in range(3):
        t = Trace("GET", "/authors", route="/authors", start_ns=0)
        t.status = 200
        for i in range(8):
            start = 1_000_000 + i * 20_000_000
            t.add_span(
                "db",
                "SELECT * FROM book WHERE author_id = ?",
                start,
                start + 15_000_000,
                {"params_hash": i, "db.system": "sqlite"},
            )
        t.duration_ns = 200_000_000 + n
        traces.append(t)
    path = tmp_path / "traces.json"
    export_traces(path, traces)
    out_html = tmp_path / "a.html"
    assert main(["analyze", str(path), "--html", str(out_html)]) == 0
    out = capsys.readouterr().out
    assert "lagless analyze" in out and "n-plus-one" in out  # 8 x 15 ms: production-worthy
    assert "lagless analyze" in out_html.read_text()
    (tmp_path / "bad.json").write_text('{"format": "other", "traces": []}')
    assert main(["analyze", str(tmp_path / "bad.json")]) == 2


def test_analyze_with_no_production_finding_points_to_doctor_mode(
    tmp_path: Path, capsys: Any
) -> None:
    """A laptop's N+1 (microsecond queries) is below the production thresholds: the empty
    report says so and names --mode doctor, which finds it."""
    from lagless._export import export_traces

    traces = []
    for _ in range(3):
        t = Trace("GET", "/authors", route="/authors", start_ns=0)
        t.status = 200
        for i in range(20):
            start = 1_000_000 + i * 100_000
            t.add_span(
                "db", "SELECT * FROM author WHERE id = ?", start, start + 20_000, {"params_hash": i}
            )
        t.duration_ns = 4_000_000
        traces.append(t)
    path = tmp_path / "traces.json"
    export_traces(path, traces)
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "No findings." in out and "--mode doctor" in out
    assert main(["analyze", str(path), "--mode", "doctor"]) == 0
    out = capsys.readouterr().out
    assert "n-plus-one" in out and "Production thresholds" not in out


def test_example_without_action_prints_usage(capsys: Any) -> None:
    assert main(["example"]) == 2
    assert "serve" in capsys.readouterr().out

"""lagless's pytest plugin, run on generated test files with pytester."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

# pytester's in-process runs drop, afterwards, every module first imported inside them; what
# the inner runs use is imported here first so each run sees the same module objects.
import starlette.testclient  # noqa: F401

import lagless.detectors
import lagless.integrations.sqlite3
import lagless.testing  # noqa: F401

APP = """
import sqlite3

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import lagless


@pytest.fixture
def client(tmp_path):
    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE author (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("CREATE TABLE book (id INTEGER PRIMARY KEY, author_id INTEGER)")
    conn.executemany("INSERT INTO author VALUES (?, ?)", [(i, f"a{i}") for i in range(8)])
    conn.executemany("INSERT INTO book VALUES (?, ?)", [(i, i % 8) for i in range(40)])
    conn.commit()
    conn.close()

    async def authors(request):
        conn = sqlite3.connect(db)
        try:
            out = []
            for author_id, name in conn.execute("SELECT id, name FROM author").fetchall():
                n = conn.execute("SELECT count(*) FROM book WHERE author_id = ?", (author_id,))
                out.append({"name": name, "books": n.fetchone()[0]})
        finally:
            conn.close()
        return JSONResponse(out, headers={"Cache-Control": "no-store"})

    async def health(request):
        return JSONResponse({"ok": True}, headers={"Cache-Control": "no-store"})

    app = Starlette(routes=[Route("/authors", authors), Route("/health", health)])
    # Only sqlite3: pytester's in-process runs drop modules first imported inside them, so
    # patching SQLAlchemy or httpx here would outlive the modules it patched.
    lagless.install_integrations(["sqlite3"])
    with TestClient(lagless.instrument(app, integrations=False)) as c:
        yield c
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(APP)
    return pytester


def test_fixture_counts_queries_and_asserts(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        def test_counts(client, lagless_traces):
            client.get("/authors")
            client.get("/health")
            assert len(lagless_traces.requests()) == 2
            assert len(lagless_traces.queries(route="/authors")) == 9
            assert lagless_traces.queries(route="/health") == []
            lagless_traces.assert_max_queries(0, route="/health")
            with pytest.raises(AssertionError, match="ran 9 queries"):
                lagless_traces.assert_max_queries(3)
            with pytest.raises(AssertionError, match="n-plus-one"):
                lagless_traces.assert_no_n_plus_one()
            codes = {f.code for f in lagless_traces.findings()}
            assert "n-plus-one" in codes
            lagless_traces.clear()
            assert lagless_traces.traces == []

        def test_healthy_route_passes(client, lagless_traces):
            client.get("/health")
            lagless_traces.assert_no_n_plus_one()
            lagless_traces.assert_no_findings(severity="low")
            lagless_traces.assert_max_queries(0)

        def test_nothing_captured_is_explained(lagless_traces):
            with pytest.raises(AssertionError, match="is the app instrumented"):
                lagless_traces.assert_max_queries(1)
        """
    )
    result = project.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=3)


def test_lagless_option_fails_tests_with_findings(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        def test_n_plus_one(client):
            client.get("/authors")

        def test_health(client):
            client.get("/health")

        def test_already_failing(client):
            client.get("/authors")
            assert False, "own failure"
        """
    )
    result = project.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio", "--lagless")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*lagless: the requests of this test produced * finding(s) at or above medium:*",
            "*n-plus-one GET /authors*",
            "*fix:*",
        ]
    )
    result.stdout.fnmatch_lines(["*own failure*"])
    # A detector can be switched off for the run; the others still judge.
    result = project.runpytest(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:asyncio",
        "--lagless=info",
        "--lagless-disable",
        "n-plus-one",
        "-k",
        "n_plus_one",
    )
    text = result.stdout.str()
    assert "1 failed, 2 deselected" in text
    assert "] blocking-call GET /authors" in text  # sync sqlite3 calls in an async handler
    assert "] n-plus-one" not in text


def test_bare_option_after_paths_and_a_bad_severity(project: pytest.Pytester) -> None:
    project.makepyfile(test_one="def test_health(client):\n    client.get('/health')\n")
    result = project.runpytest(
        "-p", "no:cacheprovider", "-p", "no:asyncio", "test_one.py", "--lagless"
    )
    result.assert_outcomes(passed=1)
    bad = project.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio", "--lagless=sever")
    assert bad.ret != 0
    assert "invalid choice: 'sever'" in bad.stderr.str()


def test_ini_option_disables_codes(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nlagless_disable = n-plus-one\n")
    project.makepyfile(
        """
        def test_n_plus_one(client, lagless_traces):
            client.get("/authors")
            assert "n-plus-one" not in {f.code for f in lagless_traces.findings()}
        """
    )
    project.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio").assert_outcomes(passed=1)


def test_plugin_is_inert_unless_used(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import lagless

        def test_plain(client):
            client.get("/authors")
            assert lagless.get_runtime()._listeners == ()
            assert lagless.get_runtime().config.body_digest is False
        """
    )
    project.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio").assert_outcomes(passed=1)


def test_plugin_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, lagless.pytest_plugin as p; "
        "print(sorted(m for m in sys.modules if m.startswith(('lagless.testing', "
        "'lagless.doctor', 'lagless.example', 'fastapi', 'sqlalchemy'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    assert "lagless.pytest_plugin" in {ep.value for ep in entry_points(group="pytest11")}


def test_plugin_severities_match_the_detectors() -> None:
    from lagless import pytest_plugin
    from lagless.detectors import SEVERITIES

    assert tuple(reversed(SEVERITIES)) == pytest_plugin._SEVERITIES

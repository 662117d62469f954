"""``lagless profile TARGET ROUTE``: in process (ASGI and WSGI) and against a server by URL."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyinstrument")

from lagless.cli import main
from tests._serve import serve_fixture

ASGI_APP = textwrap.dedent(
    """
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def crunch():
        return sum(i * i for i in range(200_000))

    async def total(request):
        return JSONResponse({"total": crunch(), "q": request.query_params.get("q")})

    app = Starlette(routes=[Route("/total", total, methods=["GET", "POST"])])
    """
)

WSGI_APP = textwrap.dedent(
    """
    from flask import Flask

    app = Flask(__name__)

    def crunch():
        return sum(i * i for i in range(200_000))

    @app.get("/total")
    def total():
        return {"total": crunch()}
    """
)


@pytest.fixture
def serve() -> Iterator[Any]:
    yield from serve_fixture()


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, name, raising=False)


def frames(path: Path) -> set[str]:
    return {f["name"] for f in json.loads(path.read_text())["shared"]["frames"]}


def test_profiles_an_asgi_app_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path, monkeypatch, "prof_asgi_app", ASGI_APP)
    out = tmp_path / "p.json"
    code = main(
        ["profile", "prof_asgi_app:app", "/total?q=1", "--format", "speedscope", "-o", str(out)]
    )
    assert code == 0
    assert "crunch" in frames(out)
    html = tmp_path / "p.html"
    assert main(["profile", "prof_asgi_app:app", "/total", "-X", "POST", "-o", str(html)]) == 0
    assert html.read_text().lower().startswith("<!doctype html")


def test_profiles_a_flask_app_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path, monkeypatch, "prof_wsgi_app", WSGI_APP)
    out = tmp_path / "w.json"
    assert (
        main(["profile", "prof_wsgi_app:app", "/total", "--format", "speedscope", "-o", str(out)])
        == 0
    )
    assert "crunch" in frames(out)


def test_profiles_a_server_by_url_with_its_token(
    tmp_path: Path, serve: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(tmp_path, monkeypatch, "prof_url_app", ASGI_APP)
    import prof_url_app  # type: ignore[import-not-found]

    import lagless
    from lagless.monitor import monitor

    token = "t" * 24
    base = serve(monitor(lagless.instrument(prof_url_app.app), profile_token=token))
    out = tmp_path / "u.json"
    args = ["profile", base, "/total", "--format", "speedscope", "-o", str(out)]
    assert main([*args, "--token", token]) == 0
    assert "crunch" in frames(out)
    assert main([*args, "--token", "w" * 24]) == 2
    assert "403" in capsys.readouterr().err
    monkeypatch.delenv("LAGLESS_PROFILE_TOKEN", raising=False)
    assert main(args) == 2


def test_bad_arguments_are_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "nomodule_here:app", "/x"]) == 2
    assert "cannot import" in capsys.readouterr().err
    assert main(["profile", "x:app", "no-slash"]) == 2
    assert main(["profile", "x:app", "/x", "-H", "nocolon"]) == 2


def test_unreachable_server_and_non_app_are_one_line_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Regression: both ended in a traceback from httpx instead of `lagless: error: ...`.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["profile", f"http://127.0.0.1:{port}", "/", "--token", "t" * 24]) == 2
    assert "ConnectError" in capsys.readouterr().err
    assert main(["profile", "json:dumps", "/"]) == 2
    assert "calling the app failed" in capsys.readouterr().err

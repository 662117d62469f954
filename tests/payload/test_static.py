from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from lagless.payload import (
    StaticApp,
    StaticFiles,
    StaticMiddleware,
    WSGIStaticApp,
    WSGIStaticMiddleware,
    build_static,
)
from lagless.payload._static import IMMUTABLE, parse_range
from tests.payload._asgi import call, simple_app

CSS = b"body { color: red; }\n" * 100  # 2100 bytes


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "css").mkdir(parents=True)
    (site / "css" / "app.css").write_bytes(CSS)
    (site / "css" / "app.css.gz").write_bytes(gzip.compress(CSS))
    (site / "css" / "app.0123456789ab.css").write_bytes(CSS)
    (site / "logo.png").write_bytes(b"\x89PNG" + bytes(range(256)) * 4)
    (tmp_path / "secret.txt").write_bytes(b"top secret")
    return site


def headers_of(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return dict(result.headers)


async def test_serves_file_with_validators(root: Path) -> None:
    r = await call(StaticApp(root), "/css/app.css")
    h = headers_of(r)
    assert r.status == 200 and r.body == CSS
    assert h["content-type"] == "text/css; charset=utf-8"
    assert h["content-length"] == str(len(CSS)) and h["accept-ranges"] == "bytes"
    assert h["etag"].startswith('"') and "last-modified" in h
    assert h["cache-control"] == "public, max-age=60"  # not hashed: short cache
    assert h["vary"] == "Accept-Encoding"  # it has a precompressed sibling


async def test_immutable_only_on_hashed_names(root: Path) -> None:
    app = StaticApp(root)
    hashed = headers_of(await call(app, "/css/app.0123456789ab.css"))
    assert hashed["cache-control"] == IMMUTABLE
    assert hashed["etag"] == '"0123456789ab"'
    assert headers_of(await call(app, "/logo.png"))["cache-control"] != IMMUTABLE


async def test_precompressed_sibling(root: Path) -> None:
    app = StaticApp(root)
    r = await call(app, "/css/app.css", headers={"accept-encoding": "br, gzip"})
    h = headers_of(r)
    assert h["content-encoding"] == "gzip" and h["vary"] == "Accept-Encoding"
    assert gzip.decompress(r.body) == CSS
    assert h["content-length"] == str(len(r.body))
    plain = headers_of(await call(app, "/css/app.css"))
    assert h["etag"] != plain["etag"]  # another representation, another validator
    assert (await call(app, "/css/app.css.gz")).status == 404  # not served by its own name


async def test_head_has_headers_but_no_body(root: Path) -> None:
    r = await call(StaticApp(root), "/css/app.css", method="HEAD")
    assert r.status == 200 and r.body == b"" and headers_of(r)["content-length"] == str(len(CSS))


async def test_conditional_requests(root: Path) -> None:
    app = StaticApp(root)
    first = headers_of(await call(app, "/logo.png"))
    r = await call(app, "/logo.png", headers={"if-none-match": first["etag"]})
    assert r.status == 304 and r.body == b"" and "content-length" not in headers_of(r)
    assert headers_of(r)["etag"] == first["etag"]
    r = await call(app, "/logo.png", headers={"if-none-match": f'W/{first["etag"]}, "zz"'})
    assert r.status == 304  # weak comparison for If-None-Match
    r = await call(app, "/logo.png", headers={"if-modified-since": first["last-modified"]})
    assert r.status == 304
    r = await call(app, "/logo.png", headers={"if-modified-since": "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert r.status == 200
    r = await call(
        app,
        "/logo.png",
        headers={"if-none-match": '"other"', "if-modified-since": first["last-modified"]},
    )
    assert r.status == 200  # If-None-Match present: If-Modified-Since is ignored
    assert (await call(app, "/logo.png", headers={"if-match": '"other"'})).status == 412
    assert (await call(app, "/logo.png", headers={"if-match": first["etag"]})).status == 200
    r = await call(
        app, "/logo.png", headers={"if-unmodified-since": "Thu, 01 Jan 1970 00:00:00 GMT"}
    )
    assert r.status == 412


async def test_ranges(root: Path) -> None:
    app = StaticApp(root)
    data = (root / "logo.png").read_bytes()
    size = len(data)
    r = await call(app, "/logo.png", headers={"range": "bytes=0-9"})
    assert r.status == 206 and r.body == data[:10]
    assert headers_of(r)["content-range"] == f"bytes 0-9/{size}"
    assert headers_of(r)["content-length"] == "10"
    r = await call(app, "/logo.png", headers={"range": "bytes=-5"})
    assert r.status == 206 and r.body == data[-5:]
    r = await call(app, "/logo.png", headers={"range": "bytes=1000-"})
    assert r.body == data[1000:]
    r = await call(app, "/logo.png", headers={"range": f"bytes={size}-"})
    assert r.status == 416 and headers_of(r)["content-range"] == f"bytes */{size}"
    r = await call(app, "/logo.png", headers={"range": "bytes=0-1,5-6"})
    assert r.status == 200 and r.body == data  # several ranges: whole file
    etag = headers_of(r)["etag"]
    r = await call(app, "/logo.png", headers={"range": "bytes=0-3", "if-range": etag})
    assert r.status == 206
    r = await call(app, "/logo.png", headers={"range": "bytes=0-3", "if-range": '"stale"'})
    assert r.status == 200 and r.body == data  # validator changed: whole file
    # a range of a file with a compressed sibling is a range of the file itself
    r = await call(app, "/css/app.css", headers={"range": "bytes=0-3", "accept-encoding": "gzip"})
    assert r.status == 206 and r.body == CSS[:4] and "content-encoding" not in headers_of(r)


def test_parse_range_rules() -> None:
    assert parse_range("bytes=0-0", 10) == (0, 1)
    assert parse_range("bytes=5-100", 10) == (5, 5)
    assert parse_range("bytes=-100", 10) == (0, 10)
    assert parse_range("bytes=-0", 10) == "unsatisfiable"
    assert parse_range("bytes=0-", 0) == "unsatisfiable"
    for ignored in ("items=0-1", "bytes=5-1", "bytes=a-b", "bytes=", "bytes=-"):
        assert parse_range(ignored, 10) is None


async def test_large_files_are_streamed_from_disk(root: Path) -> None:
    big = os.urandom(200_000)
    (root / "big.bin").write_bytes(big)
    app = StaticApp(StaticFiles(root, max_cached_size=0))
    r = await call(app, "/big.bin")
    assert r.body == big and len(r.chunks) == 4  # 64 KiB chunks
    r = await call(app, "/big.bin", headers={"range": "bytes=100000-100009"})
    assert r.body == big[100000:100010]


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/css/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "//etc/passwd",
        "/etc/passwd",
        "/css/..\\..\\secret.txt",
        "/css/./app.css/..",
        "/link.txt",
        "/linkdir/secret.txt",
    ],
)
async def test_path_traversal_is_refused(root: Path, path: str) -> None:
    (root / "link.txt").symlink_to(root.parent / "secret.txt")
    (root / "linkdir").symlink_to(root.parent)
    r = await call(StaticApp(root), path)
    assert r.status == 404 and b"secret" not in r.body
    r = await call(StaticApp(StaticFiles(root, follow_symlinks=False)), path)
    assert r.status == 404


async def test_symlink_inside_root_is_served(root: Path) -> None:
    (root / "alias.css").symlink_to(root / "css" / "app.css")
    assert (await call(StaticApp(root), "/alias.css")).body == CSS


async def test_methods_and_mounting(root: Path) -> None:
    app = StaticApp(root)
    assert (await call(app, "/logo.png", method="POST")).status == 405
    r = await call(app, "/static/logo.png", root_path="/static")
    assert r.status == 200
    mw = StaticMiddleware(simple_app(b"from app"), directory=root, prefix="/static")
    assert (await call(mw, "/static/logo.png")).status == 200
    assert (await call(mw, "/static/missing.js")).body == b"from app"
    assert (await call(mw, "/staticlogo.png")).body == b"from app"
    assert (await call(mw, "/api")).body == b"from app"


def test_starlette_mount_with_real_client(root: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    app = Starlette(routes=[Mount("/static", app=StaticApp(root))])
    with TestClient(app) as client:
        r = client.get("/static/css/app.css", headers={"accept-encoding": "gzip"})
        assert r.text == CSS.decode() and r.headers["content-encoding"] == "gzip"
        assert client.get("/static/nope.css").status_code == 404


def test_wsgi_app_and_middleware(root: Path) -> None:
    from werkzeug.test import Client

    client = Client(WSGIStaticApp(root))
    r = client.get("/logo.png", headers={"Range": "bytes=-4"})
    assert r.status_code == 206 and r.data == (root / "logo.png").read_bytes()[-4:]
    r = client.get("/css/app.css", headers={"If-None-Match": r.headers["ETag"]})
    assert r.status_code == 200
    etag = client.get("/css/app.css").headers["ETag"]
    r = client.get("/css/app.css", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.data == b""
    assert client.get("/../secret.txt").status_code == 404

    big = os.urandom(100_000)
    (root / "big.bin").write_bytes(big)

    def fallback(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"from app"]

    mw = Client(WSGIStaticMiddleware(fallback, directory=StaticFiles(root, max_cached_size=0)))
    assert mw.get("/static/big.bin").data == big  # through wsgi.file_wrapper
    assert mw.get("/static/big.bin", headers={"Range": "bytes=10-19"}).data == big[10:20]
    assert mw.get("/other").data == b"from app"


async def test_built_folder_uses_the_manifest(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.js").write_text("console.log('hello');\n" * 50)
    manifest = build_static(src, tmp_path / "out")
    app = StaticApp(tmp_path / "out")
    hashed = headers_of(
        await call(app, "/" + manifest.hashed("app.js"), headers={"accept-encoding": "br"})
    )
    assert hashed["cache-control"] == IMMUTABLE and hashed["content-encoding"] == "br"
    assert hashed["content-type"] == "text/javascript; charset=utf-8"
    original = headers_of(await call(app, "/app.js"))
    assert original["cache-control"] == "public, max-age=60"


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="does not exist"):
        StaticFiles(tmp_path / "nope")


def test_parse_range_refuses_non_ascii_digits_and_saturates_huge_numbers() -> None:
    # Regression: "\xb2" (a latin-1 superscript two) passed str.isdigit and crashed int(),
    # and a 5000-digit position hit CPython's int-conversion limit.
    assert parse_range("bytes=\xb2-", 10) is None
    assert parse_range("bytes=0-\xb9", 10) is None
    assert parse_range("bytes=" + "9" * 5000 + "-", 10) == "unsatisfiable"
    assert parse_range("bytes=2-" + "9" * 5000, 10) == (2, 8)
    assert parse_range("bytes=-" + "9" * 5000, 10) == (0, 10)
    assert parse_range("bytes=" + "0" * 30 + "3-4", 10) == (3, 2)


def test_hostile_range_header_is_answered_not_crashed(root: Path) -> None:
    files = StaticFiles(root)
    entry = files.lookup("/css/app.css")
    assert entry is not None
    plan = files.respond(entry, "GET", {"range": "bytes=\xb2-"})  # as a latin-1 header reads
    assert plan.status == 200 and plan.data == CSS
    plan = files.respond(entry, "GET", {"range": "bytes=" + "9" * 5000 + "-"})
    assert plan.status == 416 and ("content-range", f"bytes */{len(CSS)}") in plan.headers


@pytest.mark.parametrize("path", ["/.env", "/.git/config", "/css/.htpasswd"])
async def test_dotfiles_are_not_served_unless_allowed(root: Path, path: str) -> None:
    (root / ".env").write_bytes(b"SECRET_KEY=x")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(b"[core]")
    (root / "css" / ".htpasswd").write_bytes(b"admin:x")
    assert (await call(StaticApp(root), path)).status == 404
    assert not any("/." in url for url in StaticFiles(root).files)
    assert (await call(StaticApp(root, allow_dotfiles=True), path)).status == 200

"""WSGI adapters through Flask's test client (and a bare WSGI app); httplint checks every
response."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from email.utils import formatdate
from typing import Any

import pytest

flask = pytest.importorskip("flask")

from flask import Flask, Response, request  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from werkzeug.test import Client  # noqa: E402

from lagless.cache import (  # noqa: E402
    CachePolicies,
    CachePolicy,
    ConditionalWSGIMiddleware,
    MemoryBackend,
    ResponseCacheWSGIMiddleware,
)
from lagless.cache.flask import condition, install  # noqa: E402
from tests.cache._lint import assert_clean  # noqa: E402


def lint(response: Any, method: str, path: str, headers: dict[str, str] | None = None) -> None:
    assert_clean(
        method,
        "http://localhost" + path,
        response.status_code,
        list(response.headers.items()),
        b"" if method == "HEAD" else response.get_data(),
        list((headers or {}).items()),
    )


class LintedFlaskClient(FlaskClient):
    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        path = args[0] if args and isinstance(args[0], str) else kwargs.get("path", "/")
        method = kwargs.get("method", "GET")
        lint(response, method, path, kwargs.get("headers"))
        return response


class ServerDate:
    """What wsgiref and werkzeug's server do: add Date when the app sent none."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        def dated(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if not any(n.lower() == "date" for n, _ in headers):
                headers = [*headers, ("Date", formatdate(usegmt=True))]
            return start_response(status, headers, exc_info)

        return self.app(environ, dated)


calls: dict[str, int] = {}
VERSION = {"n": 5}


def build_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = "test"
    app.test_client_class = LintedFlaskClient

    def hit(name: str) -> None:
        calls[name] = calls.get(name, 0) + 1

    @app.get("/items/<int:iid>")
    def item(iid: int) -> Any:
        hit("item")
        return {"id": iid, "q": request.args.to_dict()}

    @app.get("/me")
    def me() -> Any:
        hit("me")
        who = request.headers.get("Authorization") or request.headers.get("Cookie") or "anon"
        return Response(f"hello {who}", mimetype="text/plain")

    @app.get("/session")
    def session_view() -> Any:
        hit("session")
        flask.session["n"] = calls["session"]
        return Response(f"n={calls['session']}", mimetype="text/plain")

    @app.get("/slow")
    def slow() -> Any:
        hit("slow")
        time.sleep(0.05)
        return Response("slow", mimetype="text/plain")

    @app.get("/big")
    def big() -> Any:
        hit("big")
        return Response((b"y" * 100 for _ in range(5)), mimetype="text/plain")

    @app.route("/doc/<int:did>", methods=["GET", "HEAD", "PUT"])
    @condition(etag=lambda did: VERSION["n"] if did == 1 else None)
    def doc(did: int) -> Any:
        hit("doc")
        if did != 1:
            return Response("missing", status=404, mimetype="text/plain")
        return Response("saved" if request.method == "PUT" else "the doc", mimetype="text/plain")

    install(
        app,
        policies=CachePolicies(
            {
                "/items/{iid}": CachePolicy(max_age=60),
                "/me": CachePolicy(max_age=60),
                "/session": CachePolicy(max_age=60),
                "/slow": CachePolicy(max_age=60),
                "/big": CachePolicy(max_age=60),
            }
        ),
        backend=MemoryBackend(),
        max_body=256,
    )
    app.wsgi_app = ServerDate(app.wsgi_app)  # type: ignore[method-assign]
    return app


@pytest.fixture
def client() -> Any:
    calls.clear()
    return build_app().test_client()


def test_miss_hit_conditional_and_head(client: Any) -> None:
    first = client.get("/items/1?b=2&a=1")
    assert first.headers["Cache-Status"] == "lagless; fwd=uri-miss; stored"
    assert first.headers["Cache-Control"] == "public, max-age=60"
    hit = client.get("/items/1?a=1&b=2")
    assert hit.headers["Cache-Status"].startswith("lagless; hit")
    assert hit.json == first.json and "Age" in hit.headers
    etag = first.headers["ETag"]
    cond = client.get("/items/1?a=1&b=2", headers={"If-None-Match": etag})
    assert cond.status_code == 304 and cond.data == b""
    head = client.head("/items/1?a=1&b=2")
    assert head.status_code == 200 and head.data == b""
    assert calls["item"] == 1


def test_credentials_and_set_cookie(client: Any) -> None:
    assert client.get("/me", headers={"Authorization": "Bearer a"}).data == b"hello Bearer a"
    assert client.get("/me", headers={"Authorization": "Bearer b"}).data == b"hello Bearer b"
    client.set_cookie("sid", "x")
    assert client.get("/me").data == b"hello sid=x"
    client.delete_cookie("sid")
    assert client.get("/me").data == b"hello anon"
    client.set_cookie("sid", "y")
    assert client.get("/me").data == b"hello sid=y"
    client.delete_cookie("sid")
    assert calls["me"] == 5
    first = client.get("/session")
    assert "Set-Cookie" in first.headers
    assert first.headers["Cache-Status"] == "lagless; fwd=uri-miss; detail=set-cookie"
    other = build_app().test_client()  # another user, no cookie
    second = other.get("/session")
    assert second.data == b"n=2"  # its own answer from the view, not the first user's
    assert second.headers["Set-Cookie"] != first.headers["Set-Cookie"]
    assert calls["session"] == 2


def test_single_flight_across_threads(client: Any) -> None:
    app = build_app()
    results: list[bytes] = []

    def fetch() -> None:
        results.append(app.test_client().get("/slow").data)

    threads = [threading.Thread(target=fetch) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [b"slow"] * 20
    assert calls["slow"] == 1


def test_large_bodies_stream_unstored(client: Any) -> None:
    first = client.get("/big")
    assert first.data == b"y" * 500
    assert first.headers["Cache-Status"] == "lagless; fwd=uri-miss; detail=streamed"
    client.get("/big")
    assert calls["big"] == 2


def test_condition_decorator(client: Any) -> None:
    full = client.get("/doc/1")
    assert full.headers["ETag"] == '"5"' and full.data == b"the doc"
    assert client.get("/doc/1", headers={"If-None-Match": '"5"'}).status_code == 304
    assert client.head("/doc/1", headers={"If-None-Match": '"5"'}).status_code == 304
    assert client.put("/doc/1", headers={"If-Match": '"4"'}).status_code == 412
    assert calls["doc"] == 1
    assert client.put("/doc/1", headers={"If-Match": '"5"'}).data == b"saved"
    assert client.get("/doc/2", headers={"If-None-Match": "*"}).status_code == 404
    assert calls["doc"] == 3


def legacy_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """An old-style WSGI app writing through write() and yielding the rest."""
    write = start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    write(b"written ")
    return [b"and ", b"yielded"]


def test_bare_wsgi_conditional_middleware_with_write() -> None:
    app = ServerDate(ConditionalWSGIMiddleware(legacy_app))
    client = Client(app)
    first = client.get("/x")
    assert first.get_data() == b"written and yielded"
    lint(first, "GET", "/x")
    second = client.get("/x", headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 304
    lint(second, "GET", "/x", {"If-None-Match": first.headers["ETag"]})
    post = client.post("/x")
    assert "ETag" not in post.headers


def test_wsgi_response_cache_add_date_option() -> None:
    app = ResponseCacheWSGIMiddleware(
        legacy_app, policies=CachePolicies({"/x": CachePolicy(max_age=5)}), add_date=True
    )
    client = Client(app)
    first = client.get("/x")
    second = client.get("/x")
    assert "Date" in first.headers and second.headers["Cache-Status"].startswith("lagless; hit")
    assert second.get_data() == b"written and yielded"
    lint(second, "GET", "/x")


def generator_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """start_response called on the first step of the generator (PEP 3333 allows it)."""
    length = environ.get("QUERY_STRING") == "sized"
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    if length:
        headers.append(("Content-Length", "10"))
    start_response("200 OK", headers)
    yield b"chunk1"
    yield b"tail"


def test_generators_stream_unless_their_length_is_declared() -> None:
    client = Client(ServerDate(ConditionalWSGIMiddleware(generator_app)))
    streamed = client.get("/g")
    assert streamed.get_data() == b"chunk1tail" and "ETag" not in streamed.headers
    lint(streamed, "GET", "/g")
    sized = client.get("/g?sized")
    assert sized.get_data() == b"chunk1tail" and sized.headers["ETag"].startswith('"')
    lint(sized, "GET", "/g?sized")

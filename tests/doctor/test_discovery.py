"""Route discovery: OpenAPI, Starlette/FastAPI routers, Flask url_map, Django URLconf."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lagless._scenario import parse_scenario
from lagless.doctor._discovery import (
    Endpoint,
    from_django,
    from_flask,
    from_litestar,
    from_openapi,
    from_starlette,
    merge,
    page_assets,
)
from lagless.doctor._runner import plan_requests


def _keys(endpoints: list[Endpoint]) -> set[tuple[str, str]]:
    return {(e.method, e.path) for e in endpoints}


def test_openapi_examples_in_every_spelling() -> None:
    schema: dict[str, Any] = {
        "openapi": "3.0.3",
        "paths": {
            "/openapi.json": {"get": {}},
            "/a/{id}": {"get": {"parameters": [{"name": "id", "in": "path", "example": 1}]}},
            "/b/{id}": {
                "parameters": [{"name": "id", "in": "path", "examples": {"one": {"value": "b-1"}}}],
                "get": {},
                "delete": {},
            },
            "/c/{id}": {
                "get": {
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "schema": {"type": "integer", "examples": [3]},
                        },
                        {"name": "q", "in": "query", "required": True, "schema": {"default": "x"}},
                        {"name": "page", "in": "query", "schema": {"type": "integer"}},
                    ]
                }
            },
            "/d/{kind}": {
                "get": {"parameters": [{"name": "kind", "in": "path", "schema": {"enum": ["e"]}}]}
            },
            "/e/{id}": {"get": {"parameters": [{"name": "id", "in": "path"}]}},
        },
    }
    eps = {(e.method, e.path): e for e in from_openapi(schema)}
    assert set(eps) == {
        ("GET", "/a/{id}"),
        ("GET", "/b/{id}"),
        ("DELETE", "/b/{id}"),
        ("GET", "/c/{id}"),
        ("GET", "/d/{kind}"),
        ("GET", "/e/{id}"),
    }
    assert eps["GET", "/a/{id}"].examples == {"id": 1}
    assert eps["GET", "/b/{id}"].examples == {"id": "b-1"}
    assert eps["GET", "/c/{id}"].examples == {"id": 3, "q": "x"}
    assert eps["GET", "/c/{id}"].query == ("q",)
    assert eps["GET", "/d/{kind}"].examples == {"kind": "e"}
    assert eps["GET", "/e/{id}"].examples == {}


def test_plan_fills_examples_skips_unsafe_and_unfillable_routes() -> None:
    eps = [
        Endpoint("GET", "/a/{id}", "openapi", {"id": 1}),
        Endpoint("GET", "/c/{id}", "openapi", {"id": 3, "q": "x"}, ("q",)),
        Endpoint("GET", "/e/{id}", "openapi"),
        Endpoint("GET", "/f/{slug}", "router"),
        Endpoint("DELETE", "/a/{id}", "openapi", {"id": 1}),
        Endpoint("POST", "/orders", "openapi"),
    ]
    scenario = parse_scenario(
        '[params]\nslug = ["s1", "s2"]\n[[request]]\nmethod = "POST"\npath = "/orders"\n'
    )
    plan, skipped = plan_requests(eps, scenario)
    assert [(s.method, s.path) for s in plan] == [
        ("POST", "/orders"),
        ("GET", "/a/{id}"),
        ("GET", "/c/{id}"),
        ("GET", "/f/{slug}"),
    ]
    assert plan[2].query == (("q", "{q}"),)
    reasons = {(s.method, s.route): s.reason for s in skipped}
    assert set(reasons) == {("GET", "/e/{id}"), ("DELETE", "/a/{id}")}
    assert "no value for id" in reasons["GET", "/e/{id}"]
    assert "--scenario file: [params] id = ..." in reasons["GET", "/e/{id}"]
    assert "not a safe method" in reasons["DELETE", "/a/{id}"]


def test_fastapi_routes_mounts_and_static_files(tmp_path: Path) -> None:
    from fastapi import APIRouter, FastAPI
    from fastapi.staticfiles import StaticFiles
    from starlette.routing import Mount, Route

    (tmp_path / "app.js").write_text("1")
    (tmp_path / "z.png").write_bytes(b"png")
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/items")
    async def create() -> None:
        return None

    router = APIRouter()

    @router.get("/users")
    async def users() -> list[int]:
        return []

    app.include_router(router, prefix="/v1")

    async def plain(request: Any) -> Any:
        raise AssertionError

    app.router.routes.append(Mount("/legacy", routes=[Route("/ping", plain)]))
    app.mount("/assets", StaticFiles(directory=tmp_path), name="assets")
    found = _keys(from_starlette(app))
    assert {
        ("GET", "/items/{item_id}"),
        ("POST", "/items"),
        ("GET", "/v1/users"),
        ("GET", "/legacy/ping"),
        ("GET", "/assets/app.js"),
        ("GET", "/assets/z.png"),
    } <= found
    assert not {p for _, p in found} & {"/openapi.json", "/docs", "/redoc"}
    # The schema has examples; the router adds what the schema leaves out.
    merged = merge(from_openapi(app.openapi()), from_starlette(app))
    assert sum(1 for e in merged if e.path == "/items/{item_id}") == 1
    assert ("GET", "/assets/app.js") in _keys(merged)


def test_flask_url_map_and_static_folder(tmp_path: Path) -> None:
    from flask import Flask

    (tmp_path / "site.css").write_text("body{}")
    app = Flask("t", static_folder=str(tmp_path), static_url_path="/static")

    @app.get("/books/<int:book_id>")
    def book(book_id: int) -> str:
        return ""

    @app.route("/books", methods=["GET", "POST"])
    def books() -> str:
        return ""

    @app.get("/files/<path:name>")
    def files(name: str) -> str:
        return ""

    assert _keys(from_flask(app)) == {
        ("GET", "/books/{book_id}"),
        ("GET", "/books"),
        ("POST", "/books"),
        ("GET", "/files/{name}"),
        ("GET", "/static/site.css"),
    }


def test_django_urlconf() -> None:
    pytest.importorskip("django")
    from django.urls import include, path, re_path

    def view(request: Any) -> Any:
        raise AssertionError

    class FakeAdmin:  # what admin.site.urls gives: (patterns, app_name, namespace)
        urls = ([path("", view)], "admin", "admin")

    patterns = [
        path("books/<int:pk>/", view),
        path("api/", include([path("authors/", view), path("authors/<slug:slug>", view)])),
        re_path(r"^legacy/(?P<code>[0-9]+)/$", view),
        re_path(r"^complex/(a|b)+$", view),
        path("admin/", FakeAdmin.urls),
    ]
    assert _keys(from_django(patterns)) == {
        ("GET", "/books/{pk}/"),
        ("GET", "/api/authors/"),
        ("GET", "/api/authors/{slug}"),
        ("GET", "/legacy/{code}/"),
    }


def test_page_assets_are_same_origin_scripts_styles_and_images() -> None:
    html = """<html><head>
      <link rel="stylesheet" href="/static/site.3f2a.css">
      <link rel="canonical" href="/home">
      <script src="https://cdn.example.org/x.js"></script>
      <script src="//cdn.example.org/y.js"></script>
      <script src="/static/app.js#v"></script>
    </head><body><img src="/img/logo.svg"><img src="/img/logo.svg"></body></html>"""
    assert page_assets(html) == ["/static/site.3f2a.css", "/static/app.js", "/img/logo.svg"]
    assert page_assets("{not html") == []


def test_litestar_routes_without_its_schema_pages() -> None:
    from litestar import Litestar, get, post

    @get("/hello")
    async def hello() -> str:
        return "hi"

    @get("/things/count", sync_to_thread=False)
    def thing() -> int:
        return 1

    @post("/things")
    async def add() -> None:
        return None

    endpoints = from_litestar(Litestar([hello, thing, add]))
    # Litestar's /schema, /schema/swagger, /schema/openapi.yaml... are its own, not the app's.
    assert _keys(endpoints) == {
        ("GET", "/hello"),
        ("GET", "/things/count"),
        ("POST", "/things"),
    }
    assert {e.path: e.is_async for e in endpoints if e.method == "GET"} == {
        "/hello": True,
        "/things/count": False,
    }

"""Views and URLs for the Django cache tests (used as ROOT_URLCONF through override_settings)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

from lagless.cache import CachePolicies, CachePolicy
from lagless.cache.django import condition

calls: dict[str, int] = {}

FULL_RESPONSE = "Test conditional get response"
LAST_MODIFIED = datetime(2007, 10, 21, 23, 21, 47, tzinfo=UTC)
ETAG = '"b4246ffc4f62314ca13147c9d4f76974"'
WEAK_ETAG = 'W/"b4246ffc4f62314ca13147c9d4f76974"'


def _count(name: str) -> None:
    calls[name] = calls.get(name, 0) + 1


def product(request: HttpRequest, pid: int) -> HttpResponse:
    _count("product")
    return JsonResponse({"id": pid, "q": request.GET.dict()})


def me(request: HttpRequest) -> HttpResponse:
    _count("me")
    who = request.headers.get("Authorization") or request.headers.get("Cookie") or "anonymous"
    return HttpResponse(f"hello {who}", content_type="text/plain; charset=utf-8")


def login(request: HttpRequest) -> HttpResponse:
    _count("login")
    response = HttpResponse("welcome", content_type="text/plain; charset=utf-8")
    response.set_cookie("sid", f"secret-{calls['login']}")
    return response


def vary_star(request: HttpRequest) -> HttpResponse:
    _count("vary_star")
    response = HttpResponse("x", content_type="text/plain; charset=utf-8")
    response["Vary"] = "*"
    return response


def stream(request: HttpRequest) -> StreamingHttpResponse:
    _count("stream")
    return StreamingHttpResponse(
        (b"x" * 100 for _ in range(3)), content_type="text/plain; charset=utf-8"
    )


def _full(request: HttpRequest) -> HttpResponse:
    _count("condition")
    return HttpResponse(FULL_RESPONSE, content_type="text/plain; charset=utf-8")


# The shapes of Django's own conditional_processing views, through lagless's decorator.
index = condition(last_modified=lambda r: LAST_MODIFIED, etag=lambda r: ETAG)(_full)
last_modified_view = condition(last_modified=lambda r: LAST_MODIFIED)(_full)
etag_view = condition(etag=lambda r: ETAG)(_full)
weak_etag_view = condition(etag=lambda r: WEAK_ETAG)(_full)
unquoted_etag_view = condition(etag=lambda r: ETAG.strip('"'))(_full)


def plain(request: HttpRequest) -> HttpResponse:
    _count("plain")
    return HttpResponse("plain body", content_type="text/plain; charset=utf-8")


ARTICLE_VERSION: dict[int, int] = {}


def article(request: HttpRequest, aid: int) -> HttpResponse:
    """GET: the article (varies on Accept). POST/PUT: bump it; answer ``?status=`` with the
    ``?location=`` / ``?content_location=`` given (the invalidation tests)."""
    if request.method in ("GET", "HEAD"):
        _count("article")
        accept = request.headers.get("Accept", "-")
        body = f"article {aid} v{ARTICLE_VERSION.get(aid, 0)} {accept}"
        response = HttpResponse(body, content_type="text/plain; charset=utf-8")
        response["Vary"] = "Accept"
        return response
    ARTICLE_VERSION[aid] = ARTICLE_VERSION.get(aid, 0) + 1
    response = HttpResponse(
        "done", content_type="text/plain; charset=utf-8", status=int(request.GET.get("status", 200))
    )
    if "location" in request.GET:
        response["Location"] = request.GET["location"]
    if "content_location" in request.GET:
        response["Content-Location"] = request.GET["content_location"]
    return response


VERSION = {"value": 3}
POLICIES = CachePolicies(
    {
        "GET /products/{pid}": CachePolicy(max_age=60),
        "/me": CachePolicy(max_age=60),
        "/me-cookie": CachePolicy(max_age=60, vary_on_cookie=True),
        "/login": CachePolicy(max_age=60),
        "/vary-star": CachePolicy(max_age=60),
        "/stream": CachePolicy(max_age=60),
        "GET /articles/{aid}": CachePolicy(max_age=60),
        "GET /validated": CachePolicy(no_cache=True, etag=lambda r: VERSION["value"]),
        "PUT /validated": CachePolicy(etag=lambda r: VERSION["value"]),
    }
)

urlpatterns = [
    path("products/<int:pid>", product),
    path("me", me),
    path("me-cookie", me),
    path("login", login),
    path("vary-star", vary_star),
    path("stream", stream),
    path("articles/<int:aid>", article),
    path("validated", plain),
    path("plain", plain),
    path("condition/", index),
    path("condition/last_modified/", last_modified_view),
    path("condition/etag/", etag_view),
    path("condition/weak_etag/", weak_etag_view),
    path("condition/unquoted_etag/", unquoted_etag_view),
]

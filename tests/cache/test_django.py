"""Django: the response cache and conditional middlewares and the ``condition`` decorator,
through Django's test client; httplint checks every response."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from tests.cache._lint import assert_clean  # noqa: E402

MIDDLEWARE = [
    "lagless.cache.django.ConditionalMiddleware",
    "lagless.cache.django.ResponseCacheMiddleware",
]


class LintedClient(Client):
    """Django's test client; every response goes through httplint."""

    def request(self, **request: Any) -> Any:
        response = super().request(**request)
        headers = list(response.items())
        headers += [("set-cookie", c.OutputString()) for c in response.cookies.values()]
        body = b"".join(response.streaming_content) if response.streaming else response.content
        if response.streaming:
            response.streaming_content = [body]
        method = request["REQUEST_METHOD"]
        request_headers = [
            (k[5:].replace("_", "-").lower(), str(v))
            for k, v in {**self.defaults, **request}.items()
            if k.startswith("HTTP_")
        ]
        assert_clean(
            method,
            "http://testserver" + request["PATH_INFO"],
            response.status_code,
            headers,
            b"" if method == "HEAD" else body,
            request_headers,
        )
        return response


@pytest.fixture
def dj() -> Iterator[Any]:
    """Configure Django if no other suite did (at run time, never at collection, so the other
    suites' conftests configure first in a full run), then override what these tests need."""
    if not settings.configured:
        settings.configure(
            SECRET_KEY="lagless-cache-tests",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF="tests.cache.django_app",
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            DATABASES={},
            USE_TZ=True,
        )
        django.setup()
    from tests.cache import django_app

    django_app.calls.clear()
    with override_settings(
        ROOT_URLCONF="tests.cache.django_app",
        MIDDLEWARE=MIDDLEWARE,
        ALLOWED_HOSTS=["*"],
        LAGLESS_CACHE={"policies": "tests.cache.django_app.POLICIES", "add_date": True},
    ):
        yield django_app


def test_cache_miss_hit_and_304(dj: Any) -> None:
    client = LintedClient()
    first = client.get("/products/1?b=2&a=1")
    assert first["Cache-Status"] == "lagless; fwd=uri-miss; stored"
    assert first["Cache-Control"] == "public, max-age=60"
    second = client.get("/products/1?a=1&b=2")
    assert second["Cache-Status"].startswith("lagless; hit")
    assert second.json() == first.json() and "Age" in second
    not_modified = client.get("/products/1?a=1&b=2", HTTP_IF_NONE_MATCH=first["ETag"])
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified["ETag"] == first["ETag"] and "Date" in not_modified
    head = client.head("/products/1?a=1&b=2")
    assert head.status_code == 200 and head.content == b""
    assert dj.calls["product"] == 1


def test_users_never_share(dj: Any) -> None:
    client = LintedClient()
    alice = client.get("/me", HTTP_AUTHORIZATION="Bearer alice")
    bob = client.get("/me", HTTP_AUTHORIZATION="Bearer bob")
    assert (alice.content, bob.content) == (b"hello Bearer alice", b"hello Bearer bob")
    assert alice["Cache-Status"] == "lagless; fwd=bypass; detail=authorization"
    assert client.get("/me", HTTP_COOKIE="sid=c").content == b"hello sid=c"
    assert client.get("/me").content == b"hello anonymous"
    assert client.get("/me", HTTP_COOKIE="sid=d").content == b"hello sid=d"
    a = client.get("/me-cookie", HTTP_COOKIE="sid=a")
    b = client.get("/me-cookie", HTTP_COOKIE="sid=b")
    a2 = client.get("/me-cookie", HTTP_COOKIE="sid=a")
    assert (a.content, b.content, a2.content) == (b"hello sid=a", b"hello sid=b", b"hello sid=a")
    assert a2["Cache-Status"].startswith("lagless; hit")
    assert "Cookie" in a["Vary"] or "cookie" in a["Vary"]
    assert dj.calls["me"] == 7  # every request with credentials reached the view


def test_set_cookie_never_replayed_and_vary_star_never_stored(dj: Any) -> None:
    client = LintedClient()
    one = client.get("/login")
    client.cookies.clear()
    two = client.get("/login")
    client.cookies.clear()
    assert one.cookies["sid"].value == "secret-1" and two.cookies["sid"].value == "secret-2"
    assert one["Cache-Status"] == "lagless; fwd=uri-miss; detail=set-cookie"
    assert client.get("/vary-star")["Cache-Status"] == "lagless; fwd=uri-miss; detail=vary-star"
    client.get("/vary-star")
    assert dj.calls == {"login": 2, "vary_star": 2}


def test_streaming_responses_pass_through(dj: Any) -> None:
    client = LintedClient()
    response = client.get("/stream")
    assert b"".join(response.streaming_content) == b"x" * 300
    client.get("/stream")
    assert dj.calls["stream"] == 2


def test_policy_validators_answer_before_the_view(dj: Any) -> None:
    client = LintedClient()
    full = client.get("/validated")
    assert full["ETag"] == '"3"'
    assert client.get("/validated", HTTP_IF_NONE_MATCH='"3"').status_code == 304
    assert client.put("/validated", HTTP_IF_MATCH='"2"').status_code == 412
    assert dj.calls["plain"] == 1
    assert client.put("/validated", HTTP_IF_MATCH='"3"').status_code == 200
    assert dj.calls["plain"] == 2


def test_conditional_middleware_hashes_bodies(dj: Any) -> None:
    client = LintedClient()
    first = client.get("/plain")
    assert first["ETag"].startswith('"')
    assert client.get("/plain", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    assert client.get("/plain", HTTP_IF_NONE_MATCH='"nope"').status_code == 200
    assert dj.calls["plain"] == 3


# --- Django's conditional_processing suite, through lagless.cache.django.condition -------------
LM = "Sun, 21 Oct 2007 23:21:47 GMT"
NEWER = "Mon, 18 Oct 2010 16:56:23 GMT"
INVALID = "Mon, 32 Oct 2010 16:56:23 GMT"
OLDER = "Sat, 20 Oct 2007 23:21:47 GMT"
ETAG = '"b4246ffc4f62314ca13147c9d4f76974"'
WEAK = 'W/"b4246ffc4f62314ca13147c9d4f76974"'
EXPIRED = '"7fae4cd4b0f81e7d2914700043aa8ed6"'


def full(response: Any, last_modified: bool = True, etag: bool = True) -> bool:
    ok = response.status_code == 200 and response.content == b"Test conditional get response"
    if last_modified:
        ok = ok and response["Last-Modified"] == LM
    if etag:
        ok = ok and response["ETag"] == ETAG
    return ok


def not_modified(response: Any) -> bool:
    return response.status_code == 304 and response.content == b""


@pytest.fixture
def plain_client(dj: Any) -> Iterator[LintedClient]:
    with override_settings(MIDDLEWARE=[]):
        yield LintedClient()


def test_django_suite_modified_since(plain_client: LintedClient) -> None:
    c = plain_client
    assert full(c.get("/condition/"))
    for value, expect in ((LM, True), (NEWER, True), (INVALID, False), (OLDER, False)):
        response = c.get("/condition/", HTTP_IF_MODIFIED_SINCE=value)
        assert not_modified(response) if expect else full(response)
        assert full(c.put("/condition/", HTTP_IF_MODIFIED_SINCE=value))
    for value, status in ((LM, 200), (NEWER, 200), (INVALID, 200), (OLDER, 412)):
        assert c.get("/condition/", HTTP_IF_UNMODIFIED_SINCE=value).status_code == status
    assert not_modified(c.head("/condition/", HTTP_IF_MODIFIED_SINCE=LM))


def test_django_suite_etags(plain_client: LintedClient) -> None:
    c = plain_client
    assert not_modified(c.get("/condition/", HTTP_IF_NONE_MATCH=ETAG))
    assert c.put("/condition/", HTTP_IF_NONE_MATCH=ETAG).status_code == 412
    assert full(c.get("/condition/", HTTP_IF_NONE_MATCH=EXPIRED))
    assert not_modified(c.get("/condition/", HTTP_IF_NONE_MATCH=f"{ETAG}, {EXPIRED}"))
    assert not_modified(c.get("/condition/weak_etag/", HTTP_IF_NONE_MATCH=ETAG))
    assert c.put("/condition/weak_etag/", HTTP_IF_NONE_MATCH=WEAK).status_code == 412
    assert not_modified(c.get("/condition/", HTTP_IF_NONE_MATCH=WEAK))
    assert not_modified(c.get("/condition/", HTTP_IF_NONE_MATCH="*"))
    assert c.put("/condition/", HTTP_IF_NONE_MATCH="*").status_code == 412
    assert full(c.put("/condition/", HTTP_IF_MATCH=ETAG))
    assert c.put("/condition/", HTTP_IF_MATCH=EXPIRED).status_code == 412
    assert c.get("/condition/weak_etag/", HTTP_IF_MATCH=ETAG).status_code == 412
    assert c.get("/condition/", HTTP_IF_MATCH=WEAK).status_code == 412
    assert full(c.get("/condition/", HTTP_IF_MATCH="*"))
    assert full(c.get("/condition/etag/", HTTP_IF_NONE_MATCH='"""'), last_modified=False)


def test_django_suite_both_and_single(plain_client: LintedClient) -> None:
    c = plain_client
    both = (
        (LM, ETAG, True),
        (OLDER, ETAG, True),
        (LM, EXPIRED, False),
        (OLDER, EXPIRED, False),
    )
    for ims, inm, expect in both:
        response = c.get("/condition/", HTTP_IF_MODIFIED_SINCE=ims, HTTP_IF_NONE_MATCH=inm)
        assert not_modified(response) if expect else full(response)
    both2 = ((LM, ETAG, 200), (OLDER, ETAG, 200), (OLDER, EXPIRED, 412), (LM, EXPIRED, 412))
    for ius, im, status in both2:
        response = c.get("/condition/", HTTP_IF_UNMODIFIED_SINCE=ius, HTTP_IF_MATCH=im)
        assert response.status_code == status
    assert not_modified(c.get("/condition/last_modified/", HTTP_IF_MODIFIED_SINCE=LM))
    assert full(c.get("/condition/etag/", HTTP_IF_MODIFIED_SINCE=LM), last_modified=False)
    assert not_modified(c.get("/condition/etag/", HTTP_IF_NONE_MATCH=ETAG))
    assert full(c.get("/condition/last_modified/", HTTP_IF_NONE_MATCH=ETAG), etag=False)
    assert c.get("/condition/last_modified/", HTTP_IF_UNMODIFIED_SINCE=OLDER).status_code == 412
    # No Last-Modified: If-Unmodified-Since is ignored (RFC 9110 §13.1.4; Django says 412).
    assert c.get("/condition/etag/", HTTP_IF_UNMODIFIED_SINCE=OLDER).status_code == 200


def test_django_suite_unquoted(plain_client: LintedClient) -> None:
    c = plain_client
    assert c.get("/condition/etag/")["ETag"] == c.get("/condition/unquoted_etag/")["ETag"]
    assert not_modified(c.get("/condition/unquoted_etag/", HTTP_IF_NONE_MATCH=ETAG))
    assert c.put("/condition/unquoted_etag/", HTTP_IF_NONE_MATCH=ETAG).status_code == 412
    response = c.get("/condition/unquoted_etag/", HTTP_IF_NONE_MATCH=EXPIRED)
    assert full(response, last_modified=False)

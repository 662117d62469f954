"""The responses, renderers and middlewares in real frameworks, through their test clients."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from fastapi import Request

import lagless
from lagless.payload import ACCEPT_MSGPACK, decode_response, decompress
from tests.payload.models import PItem, POwner

WHEN = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
ITEMS = [
    PItem(
        id=i,
        name=f"item {i}",
        price=Decimal("1.50"),
        uid=uuid.UUID(int=i),
        created=WHEN,
        owner=POwner(id=1, email="o@x.io"),
    )
    for i in range(3)
]
AS_JSON = [
    {
        "id": i,
        "name": f"item {i}",
        "price": "1.50",
        "uid": str(uuid.UUID(int=i)),
        "created": "2024-01-02T03:04:05Z",
        "owner": {"id": 1, "email": "o@x.io"},
        "tags": [],
    }
    for i in range(3)
]


def fastapi_app():  # type: ignore[no-untyped-def]
    from fastapi import FastAPI

    from lagless.payload import FastResponse, LaglessJSONResponse

    app = FastAPI(default_response_class=LaglessJSONResponse)

    @app.get("/items")
    async def items(request: Request) -> FastResponse:
        return FastResponse(ITEMS, request=request, sparse=list[PItem])

    @app.get("/plain")
    async def plain() -> LaglessJSONResponse:
        return LaglessJSONResponse({"when": WHEN, "d": Decimal("2")})

    @app.get("/default")
    async def default() -> dict[str, object]:
        return {"id": uuid.UUID(int=5)}

    return app


def test_fastapi_negotiates_json_and_msgpack() -> None:
    from fastapi.testclient import TestClient

    with TestClient(fastapi_app()) as client:
        r = client.get("/items")
        assert r.headers["content-type"] == "application/json"
        assert r.headers["vary"] == "Accept"
        assert r.json() == AS_JSON
        r = client.get("/items", headers={"accept": ACCEPT_MSGPACK})
        assert r.headers["content-type"] == "application/msgpack"
        assert decode_response(r) == msgspec.msgpack.decode(r.content)
        assert decode_response(r)[0]["owner"] == {"id": 1, "email": "o@x.io"}
        r = client.get("/items", headers={"accept": "application/x-msgpack"})
        assert r.headers["content-type"] == "application/msgpack"
        r = client.get("/items", headers={"accept": "application/msgpack;q=0, */*"})
        assert r.headers["content-type"] == "application/json"
        r = client.get("/items", headers={"accept": "text/html"})  # nothing acceptable
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert client.get("/plain").json() == {"when": "2024-01-02T03:04:05Z", "d": "2"}
        assert client.get("/default").json() == {"id": str(uuid.UUID(int=5))}


def test_fastapi_sparse_fields() -> None:
    from fastapi.testclient import TestClient

    with TestClient(fastapi_app()) as client:
        r = client.get("/items", params={"fields": "id,owner.email"})
        assert r.json() == [{"id": i, "owner": {"email": "o@x.io"}} for i in range(3)]
        r = client.get("/items", params={"fields": "id,colour"})
        assert r.status_code == 400
        assert r.json()["unknown"] == ["colour"] and "name" in r.json()["known"]
        r = client.get("/items", params={"fields": "id"}, headers={"accept": "application/msgpack"})
        assert decode_response(r) == [{"id": i} for i in range(3)]


def test_fastapi_serialize_span_in_a_trace() -> None:
    from fastapi.testclient import TestClient

    app = lagless.instrument(fastapi_app())
    with TestClient(app) as client:
        client.get("/items", headers={"accept": "application/msgpack"})
    (trace,) = [t for t in lagless.recent_traces() if t.path == "/items"]
    (span,) = trace.spans_of("serialize")
    assert span.get("format") == "msgpack" and span.get("bytes", 0) > 100


def test_flask_provider_and_fast_response() -> None:
    from flask import Flask, jsonify

    from lagless.payload import LaglessJSONProvider, fast_response

    app = Flask(__name__)
    app.json = LaglessJSONProvider(app)

    @app.get("/jsonify")
    def via_jsonify():  # type: ignore[no-untyped-def]
        return jsonify(ITEMS)

    @app.get("/dict")
    def via_dict():  # type: ignore[no-untyped-def]
        return {"uid": uuid.UUID(int=1), "when": WHEN}

    @app.get("/items")
    def items():  # type: ignore[no-untyped-def]
        return fast_response(ITEMS, sparse=True)

    @app.post("/echo")
    def echo():  # type: ignore[no-untyped-def]
        from flask import request

        return {"got": request.get_json()}

    client = app.test_client()
    assert client.get("/jsonify").get_json() == AS_JSON
    assert client.get("/dict").get_json() == {
        "uid": str(uuid.UUID(int=1)),
        "when": "2024-01-02T03:04:05Z",
    }
    assert client.post("/echo", json={"a": [1]}).get_json() == {"got": {"a": [1]}}
    r = client.get("/items", headers={"Accept": "application/msgpack"})
    assert r.content_type == "application/msgpack" and r.headers["Vary"] == "Accept"
    assert decode_response(r) == msgspec.msgpack.decode(r.data)
    assert client.get("/items?fields=name").get_json() == [{"name": f"item {i}"} for i in range(3)]
    r = client.get("/items?fields=nope")
    assert r.status_code == 400 and r.get_json()["unknown"] == ["nope"]


def test_django_fast_response() -> None:
    from django.test import RequestFactory

    from lagless.payload import DjangoFastResponse

    rf = RequestFactory()
    r = DjangoFastResponse(ITEMS, request=rf.get("/", HTTP_ACCEPT="application/msgpack"))
    assert r["Content-Type"] == "application/msgpack" and r["Vary"] == "Accept"
    assert msgspec.msgpack.decode(r.content)[0]["uid"] == str(uuid.UUID(int=0))
    r = DjangoFastResponse(ITEMS, request=rf.get("/", {"fields": "id"}), sparse=list[PItem])
    assert msgspec.json.decode(r.content) == [{"id": i} for i in range(3)]
    r = DjangoFastResponse(ITEMS, request=rf.get("/", {"fields": "x"}), sparse=True)
    assert r.status_code == 400
    assert msgspec.json.decode(DjangoFastResponse({"a": WHEN}).content) == {
        "a": "2024-01-02T03:04:05Z"
    }


def test_drf_renderers_negotiate() -> None:
    from rest_framework.response import Response
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    from lagless.payload import LaglessJSONRenderer, MessagePackRenderer, XMessagePackRenderer

    class ItemsView(APIView):
        renderer_classes = [LaglessJSONRenderer, MessagePackRenderer, XMessagePackRenderer]
        authentication_classes: list[type] = []
        permission_classes: list[type] = []

        def get(self, request):  # type: ignore[no-untyped-def]
            return Response([item.model_dump() for item in ITEMS])

    from django.test import override_settings

    view = ItemsView.as_view()
    factory = APIRequestFactory()
    # No django.contrib.auth in these settings: DRF must not build an AnonymousUser.
    with override_settings(REST_FRAMEWORK={"UNAUTHENTICATED_USER": None}):
        r = view(factory.get("/items"))
        r.render()
        assert r["Content-Type"] == "application/json" and "Accept" in r["Vary"]
        assert msgspec.json.decode(r.content) == AS_JSON
        for accept in ("application/msgpack", "application/x-msgpack"):
            r = view(factory.get("/items", HTTP_ACCEPT=accept))
            r.render()
            assert r["Content-Type"] == accept
            decoded = msgspec.msgpack.decode(r.content)
            assert decoded[0]["created"] == WHEN  # a MessagePack timestamp, not a string
            assert [PItem.model_validate(x) for x in decoded] == ITEMS


DJANGO_MW = {
    "ROOT_URLCONF": "tests.payload.django_urls",
    "MIDDLEWARE": [
        "lagless.payload.DjangoStaticMiddleware",
        "lagless.payload.DjangoCompressionMiddleware",
    ],
}


@pytest.fixture
def static_root(tmp_path: Path) -> Path:
    (tmp_path / "app.0123456789ab.js").write_bytes(b"let x = 1;\n" * 100)
    return tmp_path


def test_django_middlewares_sync(static_root: Path) -> None:
    from django.test import Client, override_settings

    from tests.payload.django_urls import BIG

    with override_settings(
        **DJANGO_MW, LAGLESS_STATIC_ROOT=str(static_root), LAGLESS_STATIC_PREFIX="/static/"
    ):
        client = Client()
        r = client.get("/big", HTTP_ACCEPT_ENCODING="gzip, br")
        assert r["Content-Encoding"] == "br" and r["Vary"] == "Accept-Encoding"
        assert decompress(r.content, "br") == BIG
        assert r["Content-Length"] == str(len(r.content))
        r = client.get("/stream", HTTP_ACCEPT_ENCODING="gzip")
        assert r["Content-Encoding"] == "gzip"
        assert decompress(b"".join(r.streaming_content), "gzip") == b"".join(
            b"line %d\n" % i for i in range(300)
        )
        r = client.head("/big", HTTP_ACCEPT_ENCODING="gzip")
        assert not r.has_header("Content-Encoding")
        r = client.get("/items?fields=owner.email", HTTP_ACCEPT="application/msgpack")
        assert msgspec.msgpack.decode(r.content) == [{"owner": {"email": "a@b.c"}}] * 3
        r = client.get("/static/app.0123456789ab.js", HTTP_RANGE="bytes=0-2")
        assert r.status_code == 206 and b"".join(r) == b"let"
        assert r["Cache-Control"] == "public, max-age=31536000, immutable"
        r = client.get("/static/app.0123456789ab.js", HTTP_IF_NONE_MATCH='"0123456789ab"')
        assert r.status_code == 304 and not r.has_header("Content-Type")
        assert client.get("/static/../settings.py").status_code == 404


async def test_django_middlewares_async(static_root: Path) -> None:
    from django.test import AsyncClient, override_settings

    from tests.payload.django_urls import BIG

    with override_settings(**DJANGO_MW, LAGLESS_STATIC_ROOT=str(static_root)):
        client = AsyncClient()
        r = await client.get("/big", headers={"accept-encoding": "zstd"})
        assert r["Content-Encoding"] == "zstd" and decompress(r.content, "zstd") == BIG
        r = await client.get("/static/app.0123456789ab.js")
        assert r.status_code == 200


def test_django_compression_settings_are_checked() -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from lagless.payload import DjangoCompressionMiddleware

    with (
        override_settings(LAGLESS_COMPRESSION={"codings": ["lz4"]}),
        pytest.raises(ImproperlyConfigured, match="lz4"),
    ):
        DjangoCompressionMiddleware(lambda request: None)

from __future__ import annotations

import pytest

from lagless._trace import Trace, _current_trace
from lagless.payload import (
    CompressionMiddleware,
    WSGICompressionMiddleware,
    compress,
    decide,
    decompress,
)
from lagless.payload._compression import compressor, is_compressible, merge_vary, weaken_etag
from tests.payload._asgi import call, simple_app

BODY = b'{"items":[' + b",".join(b'{"id":%d,"name":"item %d"}' % (i, i) for i in range(300)) + b"]}"
ALL = "gzip, deflate, br, zstd"


def plan(**overrides: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "method": "GET",
        "status": 200,
        "headers": [("Content-Type", "application/json")],
        "accept_encoding": ALL,
        "body_length": len(BODY),
    }
    args.update(overrides)
    return decide(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_one_shot_and_streaming_round_trip(coding: str) -> None:
    assert decompress(compress(BODY, coding), coding) == BODY
    comp = compressor(coding)
    out = (
        b"".join(
            comp.compress(BODY[i : i + 1000]) + comp.flush() for i in range(0, len(BODY), 1000)
        )
        + comp.finish()
    )
    assert decompress(out, coding) == BODY


def test_decide_compresses_with_the_preferred_coding() -> None:
    d = plan(
        headers=[
            ("Content-Type", "application/json"),
            ("ETag", '"v1"'),
            ("Content-Length", str(len(BODY))),
            ("Accept-Ranges", "bytes"),
            ("Vary", "Accept"),
        ]
    )
    assert d.coding == "zstd"
    headers = dict(d.headers or [])
    assert headers["content-encoding"] == "zstd"
    assert headers["etag"] == 'W/"v1"'  # strong ETag made weak
    assert headers["vary"] == "Accept, Accept-Encoding"  # merged, not replaced
    assert "content-length" not in headers and "accept-ranges" not in headers


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"method": "HEAD"}, "no body"),
        ({"status": 304}, "no body"),
        ({"status": 204}, "no body"),
        ({"status": 206}, "no body"),
        ({"headers": [("Content-Encoding", "br")]}, "already encoded"),
        ({"headers": [("Cache-Control", "public, no-transform")]}, "no-transform"),
        ({"headers": [("Content-Type", "image/png")]}, "media type"),
        ({"headers": [("Content-Type", "application/zip")]}, "media type"),
        ({"headers": [("Content-Range", "bytes 0-1/2")]}, "a byte range"),
    ],
)
def test_decide_leaves_alone(overrides: dict[str, object], reason: str) -> None:
    d = plan(**overrides)
    assert d.coding is None and d.headers is None
    assert reason in d.reason


def test_small_bodies_and_identity() -> None:
    small = plan(body_length=100)
    assert small.coding is None
    assert dict(small.headers or [])["vary"] == "Accept-Encoding"  # still varies
    # identity refused: the small body is compressed anyway
    assert plan(body_length=100, accept_encoding="gzip, identity;q=0").coding == "gzip"
    # identity refused and nothing acceptable: sent as is (documented choice, no 406)
    refused = plan(accept_encoding="identity;q=0, deflate")
    assert refused.coding is None and "refused" in refused.reason
    assert plan(accept_encoding=None).coding is None
    assert plan(accept_encoding="deflate").coding is None  # unknown coding only
    assert plan(codings=("gzip",)).coding == "gzip"


def test_repeated_header_lines_are_combined() -> None:
    # Regression: a dict of the header pairs kept only the last Vary / Cache-Control line,
    # so "Vary: Accept" was dropped and a no-transform on the first line was not seen.
    d = plan(headers=[("Content-Type", "application/json"), ("Vary", "Accept"), ("Vary", "Cookie")])
    assert [v for k, v in d.headers or [] if k == "vary"] == ["Accept, Cookie, Accept-Encoding"]
    d = plan(
        headers=[
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-transform"),
            ("Cache-Control", "max-age=5"),
        ]
    )
    assert d.coding is None and "no-transform" in d.reason


def test_helpers() -> None:
    assert merge_vary(None, "Accept-Encoding") == "Accept-Encoding"
    assert merge_vary("*", "Accept-Encoding") == "*"
    assert merge_vary("accept-encoding, Cookie", "Accept-Encoding") == "accept-encoding, Cookie"
    assert weaken_etag('W/"x"') == 'W/"x"'
    assert is_compressible("image/svg+xml") and is_compressible(None)
    assert not is_compressible("video/mp4") and not is_compressible("font/woff2")


async def test_asgi_compresses_a_whole_body() -> None:
    app = CompressionMiddleware(simple_app(BODY, headers={"etag": '"abc"'}))
    r = await call(app, headers={"accept-encoding": "gzip;q=0.8, br"})
    assert r.header("content-encoding") == "br"
    assert r.header("vary") == "Accept-Encoding"
    assert r.header("etag") == 'W/"abc"'
    assert int(r.header("content-length") or 0) == len(r.body) < len(BODY)
    assert decompress(r.body, "br") == BODY


async def test_asgi_records_a_middleware_span() -> None:
    trace = Trace("GET", "/")
    token = _current_trace.set(trace)
    try:
        await call(CompressionMiddleware(simple_app(BODY)), headers={"accept-encoding": "gzip"})
    finally:
        _current_trace.reset(token)
    (span,) = trace.spans_of("middleware")
    assert span.name == "compress:gzip" and span.get("input_bytes") == len(BODY)


async def test_asgi_streams_chunk_by_chunk() -> None:
    chunks = [BODY[i : i + 700] for i in range(0, len(BODY), 700)]
    app = CompressionMiddleware(simple_app(chunks))
    r = await call(app, headers={"accept-encoding": "zstd"})
    assert r.header("content-encoding") == "zstd" and r.header("content-length") is None
    bodies = [m for m in r.messages if m["type"] == "http.response.body"]
    assert len(bodies) == len(chunks)  # one compressed message per chunk, flushed
    assert all(m["body"] for m in bodies[:-1])
    assert decompress(r.body, "zstd") == BODY
    # each flushed prefix is decodable on its own: the client sees data as it is streamed
    import zstandard

    d = zstandard.ZstdDecompressor().decompressobj()
    assert d.decompress(bodies[0]["body"]) == chunks[0]


@pytest.mark.parametrize("status", [304, 204])
async def test_asgi_leaves_bodiless_responses_alone(status: int) -> None:
    app = CompressionMiddleware(simple_app(b"", status=status, headers={"etag": '"x"'}))
    r = await call(app, headers={"accept-encoding": "gzip"})
    assert r.status == status and r.body == b""
    assert r.header("content-encoding") is None and r.header("etag") == '"x"'


async def test_asgi_head_is_untouched() -> None:
    r = await call(
        CompressionMiddleware(simple_app(BODY)), method="HEAD", headers={"accept-encoding": "gzip"}
    )
    assert r.header("content-encoding") is None and r.header("content-length") == str(len(BODY))


async def test_asgi_respects_existing_encoding_and_no_transform() -> None:
    r = await call(
        CompressionMiddleware(simple_app(BODY, headers={"cache-control": "no-transform"})),
        headers={"accept-encoding": "gzip"},
    )
    assert r.body == BODY and r.header("vary") is None
    packed = compress(BODY, "gzip")
    r = await call(
        CompressionMiddleware(simple_app(packed, headers={"content-encoding": "gzip"})),
        headers={"accept-encoding": "br"},
    )
    assert r.body == packed and r.header("content-encoding") == "gzip"


async def test_asgi_passes_other_scopes_through() -> None:
    seen = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.append(scope["type"])

    await CompressionMiddleware(app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


def test_starlette_app_with_real_client() -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    async def big(request):  # type: ignore[no-untyped-def]
        return JSONResponse({"body": BODY.decode()})

    async def stream(request):  # type: ignore[no-untyped-def]
        async def gen():  # type: ignore[no-untyped-def]
            for i in range(100):
                yield f"data: {i}\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/big", big), Route("/stream", stream)])
    app.add_middleware(CompressionMiddleware)
    with TestClient(app) as client:
        r = client.get("/big", headers={"accept-encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"
        assert r.json() == {"body": BODY.decode()}  # httpx decompressed it
        r = client.get("/stream", headers={"accept-encoding": "br"})
        assert r.headers["content-encoding"] == "br"
        assert r.text == "".join(f"data: {i}\n\n" for i in range(100))


def test_wsgi_flask_whole_and_streaming() -> None:
    from flask import Flask, Response

    app = Flask(__name__)

    @app.get("/big")
    def big():  # type: ignore[no-untyped-def]
        return Response(BODY, mimetype="application/json", headers={"ETag": '"e1"'})

    @app.get("/stream")
    def stream():  # type: ignore[no-untyped-def]
        return Response((b"chunk %d\n" % i for i in range(200)), mimetype="text/plain")

    @app.get("/small")
    def small():  # type: ignore[no-untyped-def]
        return "tiny"

    app.wsgi_app = WSGICompressionMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    client = app.test_client()
    r = client.get("/big", headers={"Accept-Encoding": "zstd"})
    assert r.headers["Content-Encoding"] == "zstd" and r.headers["ETag"] == 'W/"e1"'
    assert int(r.headers["Content-Length"]) == len(r.data)
    assert decompress(r.data, "zstd") == BODY
    r = client.get("/stream", headers={"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip"
    assert decompress(r.data, "gzip") == b"".join(b"chunk %d\n" % i for i in range(200))
    r = client.get("/small", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in r.headers and r.data == b"tiny"
    assert r.headers["Vary"] == "Accept-Encoding"
    r = client.head("/big", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in r.headers and r.data == b""
    r = client.get("/big", headers={"Accept-Encoding": "gzip", "If-None-Match": '"e1"'})
    # Flask answers the conditional itself only with make_conditional; still a full 200 here
    assert r.status_code == 200


def test_wsgi_304_untouched() -> None:
    def app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("304 Not Modified", [("ETag", '"x"')])
        return []

    from werkzeug.test import Client

    r = Client(WSGICompressionMiddleware(app)).get("/", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 304 and r.data == b""
    assert "Content-Encoding" not in r.headers and r.headers["ETag"] == '"x"'


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown content coding"):
        CompressionMiddleware(simple_app(b""), codings=("lz4",))
    with pytest.raises(ValueError, match="minimum_size"):
        WSGICompressionMiddleware(lambda e, s: [], minimum_size=-1)

"""gzip's two backends: libdeflate (the optional ``deflate`` package) for whole bodies, zlib
for streams and whenever ``deflate`` is not installed. Both must produce plain gzip that any
client (zlib, the ``gzip`` module) decodes, and both must honour the configured level."""

from __future__ import annotations

import gzip
import json
import random
import sys
import zlib
from collections.abc import Iterator

import pytest

from lagless.payload import CompressionMiddleware, WSGICompressionMiddleware, _compression, compress
from lagless.payload._compression import compressor
from tests.payload._asgi import call, simple_app

_WORDS = [
    "fast", "lean", "quiet", "sturdy", "blue", "red",
    "compact", "premium", "eco", "classic", "modern", "light",
]  # fmt: skip
_rnd = random.Random(7)
#: ~57 KB of JSON with enough variety that the levels give different sizes (a body of one
#: repeated record compresses to the same size at every level and would prove nothing).
BODY = json.dumps(
    [
        {
            "id": i,
            "name": " ".join(_rnd.choices(_WORDS, k=3)),
            "price": _rnd.randint(100, 99999),
            "tags": _rnd.sample(_WORDS, 3),
        }
        for i in range(600)
    ]
).encode()


def _is_gzip_of(blob: bytes, original: bytes) -> bool:
    return (
        blob[:3] == b"\x1f\x8b\x08"  # gzip magic, method DEFLATE
        and zlib.decompress(blob, 47) == original  # what lagless's own client does
        and gzip.decompress(blob) == original  # the stdlib gzip reader checks CRC and size
    )


@pytest.fixture
def no_libdeflate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``import deflate`` fails, as on an install without the package."""
    monkeypatch.setitem(sys.modules, "deflate", None)  # None in sys.modules: ImportError
    _compression._libdeflate_gzip.cache_clear()
    yield
    _compression._libdeflate_gzip.cache_clear()  # the next call looks again, unpatched


def test_without_libdeflate_the_lookup_really_fails(no_libdeflate: None) -> None:
    assert _compression._libdeflate_gzip() is None


@pytest.mark.parametrize("level", [1, 6, 9, 12])
def test_libdeflate_gzip_round_trips(level: int) -> None:
    deflate = pytest.importorskip("deflate")
    out = compress(BODY, "gzip", level)
    assert type(out) is bytes  # not libdeflate's bytearray: servers expect bytes
    assert _is_gzip_of(out, BODY)
    # it really is libdeflate's output, not zlib's
    assert out == bytes(deflate.gzip_compress(BODY, level))
    if level <= 9:
        assert out != zlib.compress(BODY, level, wbits=31)


def test_libdeflate_default_level_is_6() -> None:
    deflate = pytest.importorskip("deflate")
    assert compress(BODY, "gzip") == bytes(deflate.gzip_compress(BODY, 6))


def test_libdeflate_honours_the_level() -> None:
    pytest.importorskip("deflate")
    sizes = [len(compress(BODY, "gzip", level)) for level in (1, 4, 6, 9, 12)]
    assert sizes == sorted(sizes, reverse=True)  # a higher level is never larger
    assert sizes[0] > sizes[2] > sizes[-1]  # and the level is not ignored


@pytest.mark.parametrize("level", [1, 6, 9])
def test_fallback_is_zlib_gzip(no_libdeflate: None, level: int) -> None:
    out = compress(BODY, "gzip", level)
    assert _is_gzip_of(out, BODY)
    assert out == zlib.compress(BODY, level, wbits=31)


def test_fallback_honours_the_level(no_libdeflate: None) -> None:
    sizes = [len(compress(BODY, "gzip", level)) for level in (1, 4, 6, 9)]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] > sizes[-1]


def test_fallback_caps_libdeflate_only_levels_at_9(no_libdeflate: None) -> None:
    # levels={"gzip": 12} must not break a server that lacks the optional package
    assert compress(BODY, "gzip", 12) == zlib.compress(BODY, 9, wbits=31)


def test_streaming_stays_on_zlib_and_accepts_any_level() -> None:
    for level in (6, 12):
        comp = compressor("gzip", level)
        out = b"".join(
            comp.compress(BODY[i : i + 4096]) + comp.flush() for i in range(0, len(BODY), 4096)
        )
        assert _is_gzip_of(out + comp.finish(), BODY)


async def test_asgi_whole_body_uses_libdeflate() -> None:
    deflate = pytest.importorskip("deflate")
    r = await call(CompressionMiddleware(simple_app(BODY)), headers={"accept-encoding": "gzip"})
    assert r.header("content-encoding") == "gzip"
    assert r.body == bytes(deflate.gzip_compress(BODY, 6))
    assert int(r.header("content-length") or 0) == len(r.body)
    assert _is_gzip_of(r.body, BODY)


async def test_asgi_whole_body_without_libdeflate(no_libdeflate: None) -> None:
    app = CompressionMiddleware(simple_app(BODY), levels={"gzip": 12})
    r = await call(app, headers={"accept-encoding": "gzip"})
    assert r.body == zlib.compress(BODY, 9, wbits=31)
    assert _is_gzip_of(r.body, BODY)


def test_wsgi_whole_body_uses_libdeflate() -> None:
    deflate = pytest.importorskip("deflate")
    from werkzeug.test import Client

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [BODY]

    r = Client(WSGICompressionMiddleware(app, levels={"gzip": 9})).get(
        "/", headers={"Accept-Encoding": "gzip"}
    )
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.data == bytes(deflate.gzip_compress(BODY, 9))
    assert _is_gzip_of(r.data, BODY)


def test_django_whole_body_uses_libdeflate() -> None:
    deflate = pytest.importorskip("deflate")
    from django.http import HttpResponse
    from django.test import RequestFactory

    from lagless.payload import DjangoCompressionMiddleware

    mw = DjangoCompressionMiddleware(lambda request: HttpResponse(BODY, content_type="text/json"))
    response = mw(RequestFactory().get("/", HTTP_ACCEPT_ENCODING="gzip"))
    assert response["Content-Encoding"] == "gzip"
    assert response.content == bytes(deflate.gzip_compress(BODY, 6))
    assert int(response["Content-Length"]) == len(response.content)
    assert _is_gzip_of(response.content, BODY)

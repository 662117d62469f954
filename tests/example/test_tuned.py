"""The tuned example's HTTP behaviour: lagless's payload and cache parts, seen from a client.

In process through httpx's ASGI transport (no sockets), on the seeded SQLite database, with
the app instrumented as ``lagless example serve`` serves it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lagless._runtime import Runtime

pytest.importorskip("fastapi")
pytest.importorskip("aiosqlite")
pytest.importorskip("msgspec")

import httpx

from lagless.payload import ACCEPT_MSGPACK, decode_response, decompress

IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture
async def client(fresh_runtime: Runtime, example_cache: str) -> AsyncIterator[httpx.AsyncClient]:
    from lagless._cli.example_cmd import build_app

    fresh_runtime.configure(cache_dir=example_cache)
    app = build_app("tuned", None)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


async def wire_bytes(client: httpx.AsyncClient, url: str, **headers: str) -> tuple[bytes, Any]:
    request = client.build_request("GET", url, headers=headers)
    response = await client.send(request, stream=True)
    raw = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    return raw, response.headers


async def test_list_answers_messagepack_when_asked(client: httpx.AsyncClient) -> None:
    as_json = await client.get("/api/books", params={"limit": 5})
    as_msgpack = await client.get(
        "/api/books", params={"limit": 5}, headers={"Accept": ACCEPT_MSGPACK}
    )
    assert as_json.headers["content-type"] == "application/json"
    assert as_msgpack.headers["content-type"] == "application/msgpack"
    for response in (as_json, as_msgpack):
        assert "accept" in [v.strip().lower() for v in response.headers["vary"].split(",")]
    # The same data in either format; the two representations have different ETags.
    assert decode_response(as_msgpack) == as_json.json()
    assert as_msgpack.headers["etag"] != as_json.headers["etag"]
    assert len(as_msgpack.content) < len(as_json.content)
    items = as_json.json()["items"]
    assert len(items) == 5 and set(items[0]) == {
        "id",
        "title",
        "genre",
        "price",
        "published",
        "author",
    }
    assert items[0]["price"] == "44.92" and re.fullmatch(r"\d{4}-\d\d-\d\d", items[0]["published"])


@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
async def test_list_is_compressed_when_accepted(client: httpx.AsyncClient, coding: str) -> None:
    identity, plain_headers = await wire_bytes(
        client, "/api/books", **{"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain_headers
    packed, headers = await wire_bytes(client, "/api/books", **{"Accept-Encoding": coding})
    assert headers["content-encoding"] == coding
    assert "accept-encoding" in headers["vary"].lower()
    assert int(headers["content-length"]) == len(packed) < len(identity) / 2
    assert decompress(packed, coding) == identity
    # A compressed body is a different byte sequence: its ETag is weak (RFC 9110 §8.8.3).
    assert headers["etag"].startswith('W/"')


async def test_br_and_zstd_preferred_over_gzip(client: httpx.AsyncClient) -> None:
    _, browser = await wire_bytes(client, "/api/books", **{"Accept-Encoding": "gzip, deflate, br"})
    assert browser["content-encoding"] == "br"
    _, chrome = await wire_bytes(
        client, "/api/books", **{"Accept-Encoding": "gzip, deflate, br, zstd"}
    )
    assert chrome["content-encoding"] == "zstd"


async def test_static_assets_are_fingerprinted_and_immutable(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.headers["cache-control"] == "no-cache" and "etag" in page.headers
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    names = {a.rsplit("/", 1)[1] for a in assets}
    # Each asset by its content-hashed name, the MessagePack client loaded before the app.
    assert {re.sub(r"\.[0-9a-f]{12}\.", ".", n) for n in names} == {
        "style.css",
        "app.js",
        "lagless-msgpack.js",
    }
    assert page.text.index("lagless-msgpack.") < page.text.index("/app.")
    for asset in assets:
        plain = await client.get(asset, headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200
        assert plain.headers["cache-control"] == IMMUTABLE
        assert "etag" in plain.headers
        raw, headers = await wire_bytes(client, asset, **{"Accept-Encoding": "br"})
        # A precompressed sibling built once, at the highest level.
        assert headers["content-encoding"] == "br"
        assert headers["cache-control"] == IMMUTABLE
        assert decompress(raw, "br") == plain.content
        again = await client.get(
            asset,
            headers={"If-None-Match": plain.headers["etag"], "Accept-Encoding": "identity"},
        )
        assert again.status_code == 304 and again.content == b""
    # The plain name is still there (for links that cannot be rewritten), cached briefly.
    unhashed = await client.get("/static/app.js")
    assert unhashed.status_code == 200 and "immutable" not in unhashed.headers["cache-control"]
    assert (await client.get("/static/../_tuned.py")).status_code == 404


async def test_sparse_fieldsets(client: httpx.AsyncClient) -> None:
    sparse = await client.get("/api/books", params={"limit": 3, "fields": "id,title"})
    body = sparse.json()
    assert [set(item) for item in body["items"]] == [{"id", "title"}] * 3
    assert body["next"] == body["items"][-1]["id"]
    bad = await client.get("/api/books", params={"fields": "id,titel"})
    assert bad.status_code == 400
    detail = bad.json()
    assert detail["error"] == "invalid_fields" and detail["unknown"] == ["titel"]
    assert "title" in detail["known"]


async def test_response_cache_hits_keep_their_route(
    client: httpx.AsyncClient, fresh_runtime: Runtime
) -> None:
    first = await client.get("/api/books/42")
    second = await client.get("/api/books/42")
    assert "stored" in first.headers["cache-status"]
    assert second.headers["cache-status"].startswith("lagless; hit")
    assert second.json() == first.json() and "age" in second.headers
    traces = [t for t in fresh_runtime.ring if t.path == "/api/books/42"]
    assert len(traces) == 2
    # The hit never reached the router (no query), yet it is filed under its route.
    assert [t.route for t in traces] == ["/api/books/{book_id}"] * 2
    assert [sum(1 for s in t.spans if s.kind == "db") for t in traces][1] == 0
    revalidated = await client.get(
        "/api/books/42", headers={"If-None-Match": first.headers["etag"]}
    )
    assert revalidated.status_code == 304 and revalidated.content == b""
    # A client that asks for a fresh answer gets one from the handlers.
    bypass = await client.get("/api/books/42", headers={"Cache-Control": "no-cache"})
    assert "hit" not in bypass.headers["cache-status"] and bypass.json() == first.json()


async def test_isbn_304_from_the_row_version(
    client: httpx.AsyncClient, fresh_runtime: Runtime
) -> None:
    url = "/api/books/by-isbn/9780000000422"
    full = await client.get(url)
    etag, modified = full.headers["etag"], full.headers["last-modified"]
    assert full.json()["id"] == 42 and not etag.startswith("W/")
    packed = await client.get(url, headers={"Accept": ACCEPT_MSGPACK})
    assert packed.headers["etag"] != etag  # one strong tag per representation
    assert decode_response(packed) == full.json()
    fresh_runtime.ring.clear()
    not_modified = await client.get(url, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    (trace,) = [t for t in fresh_runtime.ring if t.path == url]
    # Answered before the handler: nothing was encoded (and the version came from @cached).
    assert not [s for s in trace.spans if s.kind in ("serialize", "db")]
    assert trace.route == "/api/books/by-isbn/{isbn}"
    # A JSON tag does not validate the MessagePack representation.
    other = await client.get(url, headers={"If-None-Match": etag, "Accept": ACCEPT_MSGPACK})
    assert other.status_code == 200
    by_date = await client.get(url, headers={"If-Modified-Since": modified})
    assert by_date.status_code == 304
    assert (await client.get("/api/books/by-isbn/0000000000000")).status_code == 404


async def test_stats_computed_once_for_concurrent_callers(
    client: httpx.AsyncClient, fresh_runtime: Runtime
) -> None:
    load_stats = client.app.state.load_stats  # type: ignore[attr-defined]
    await load_stats.ainvalidate()
    fresh_runtime.ring.clear()
    responses = await asyncio.gather(*(client.get("/api/stats") for _ in range(20)))
    assert {r.json()["books"] for r in responses} == {12_000}
    queries = sum(1 for t in fresh_runtime.ring for s in t.spans if s.kind == "db")
    assert queries == 1  # single-flight: one origin call for twenty concurrent misses
    assert responses[0].headers["cache-control"] == "public, max-age=300"


async def test_the_page_script_reads_either_format(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    app_js = await client.get(re.findall(r'src="(/static/app\.[^"]+)"', page)[0])
    assert "laglessMsgpack" in app_js.text and "codec.decode" in app_js.text
    client_js = await client.get(re.findall(r'src="(/static/lagless-msgpack\.[^"]+)"', page)[0])
    assert "fetchPayload" in client_js.text and "ACCEPT" in client_js.text


@pytest.mark.postgres
async def test_tuned_example_on_postgresql(
    fresh_runtime: Runtime, example_cache: str, postgres_dsn: str
) -> None:
    import uuid

    import psycopg

    from lagless.example import create_app

    fresh_runtime.configure(cache_dir=example_cache)
    schema = f"lagless_example_t{uuid.uuid4().hex[:8]}"
    try:
        app = create_app("tuned", db_url=postgres_dsn, schema=schema)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://shop") as c:
                books = await c.get("/api/books", params={"limit": 3, "fields": "id,price"})
                assert books.json()["items"] == [
                    {"id": 1, "price": "44.92"},
                    {"id": 2, "price": books.json()["items"][1]["price"]},
                    {"id": 3, "price": books.json()["items"][2]["price"]},
                ]
                detail = await c.get("/api/books/42", headers={"Accept": ACCEPT_MSGPACK})
                assert decode_response(detail)["author"]["name"]
                url = "/api/books/by-isbn/9780000000422"
                etag = (await c.get(url)).headers["etag"]
                assert (await c.get(url, headers={"If-None-Match": etag})).status_code == 304
                assert (await c.get("/api/stats")).json()["reviews"] == 48_000
                recent = (await c.get("/api/reviews/recent")).json()
                assert len(recent) == 30 and recent[0]["book"]["title"]
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

"""The TUNED shop: the same endpoints with each planted problem fixed, using lagless's parts.

The fix for each naive problem, in the order of ``_naive.py``:

- slow middleware: gone (rate limiting belongs in the proxy);
- static files: built by :func:`lagless.payload.build_static` (content-hashed names,
  precompressed ``.br``/``.zst``/``.gz`` siblings, a manifest the page resolves names through)
  and served by :class:`lagless.payload.StaticApp` with ``Cache-Control: immutable`` for a year;
- ``/api/books``: keyset pagination (``LIMIT``), only the listed columns (``load_only``), the
  authors in one extra query (``selectinload``), ``?fields=`` sparse fieldsets, and lagless's
  response cache;
- ``/api/books/by-isbn/{isbn}``: an index on ``books.isbn`` (see ``TUNED_INDEXES``), and an ETag
  from the row's ``updated_at`` so a revalidation is answered 304 without building the body;
- ``/api/books/{id}``: the author joined in once, the two independent queries run together with
  ``asyncio.gather`` on their own pooled sessions;
- ``/api/reviews/recent``: ``selectinload(Review.book)`` and an index on ``created_at``;
- ``/api/stats``: the async engine, behind a stampede-safe ``lagless.cache.cached``.

Every body goes out through :class:`lagless.payload.FastResponse` (msgspec; MessagePack when
``Accept`` prefers it; ``Vary: Accept``; a ``serialize`` span) and
:class:`lagless.payload.CompressionMiddleware` (zstd, brotli or gzip). The caching rules for
every route are declared in one table, :func:`policies`, and applied by
:class:`lagless.cache.ResponseCacheMiddleware` (Cache-Control, strong ETags, 304s, ``Age`` and
``Cache-Status``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, load_only, selectinload

from lagless.cache import (
    Cache,
    CachePolicies,
    CachePolicy,
    MemoryBackend,
    RequestInfo,
    ResponseCacheMiddleware,
    cached,
)
from lagless.example._assets import build_assets, render_page
from lagless.example._db import Database
from lagless.example._models import Author, Book, Review
from lagless.example._seed import cache_dir, isbn_for
from lagless.payload import (
    CompressionMiddleware,
    FastResponse,
    FieldsError,
    Manifest,
    StaticApp,
    apply_fields,
    negotiate_media_type,
    parse_fields,
)

ISBN_EXAMPLE = isbn_for(42)


class BookItem(msgspec.Struct):
    """One row of the book list. A declared schema lets ``?fields=`` be checked against it
    (a clear 400 for a typo, even on an empty page) and lets msgspec encode it in C."""

    id: int
    title: str
    genre: str
    price: Decimal
    published: dt.date
    author: str


_LIST_COLUMNS = (Book.id, Book.title, Book.author_id, Book.genre, Book.price, Book.published)
_DETAIL_COLUMNS = (
    *_LIST_COLUMNS,
    Book.isbn,
    Book.pages,
    Book.cover_url,
    Book.description,
    Book.subtitle,
    Book.format,
)


def _format(headers: Any) -> str:
    """The representation ``FastResponse`` will pick for these request headers."""
    media = negotiate_media_type(headers.get("accept"), ("application/json", "application/msgpack"))
    return "msgpack" if media == "application/msgpack" else "json"


def policies(db: Database, cache: Cache) -> CachePolicies:
    """Every route's caching rules, in one place (docs/caching.md)."""

    # The row version stands for the whole by-ISBN body (id, title and price all live in the
    # row), so a revalidation costs a version lookup and no query of the body, no encoding.
    # Versions are kept 5 s: far less than the 300 s clients may already keep the body.
    @cached(ttl=5, key="example:isbn-version:{isbn}", cache=cache)
    async def isbn_version(isbn: str) -> str | None:
        async with db.sessions() as session:
            row = (
                await session.execute(select(Book.id, Book.updated_at).where(Book.isbn == isbn))
            ).first()
        return None if row is None else f"book{row.id}-{row.updated_at:%Y%m%d%H%M%S}"

    async def isbn_etag(info: RequestInfo) -> str | None:
        version = await isbn_version(info.params["isbn"])
        if version is None:
            return None  # no such book: the handler answers (404)
        # JSON and MessagePack bodies must not share a strong ETag (RFC 9110 §8.8.3).
        return f"{version}-{_format(info.headers)}"

    return CachePolicies(
        {
            # The page names its assets by content hash; revalidate it on every visit so a
            # deploy's new names are picked up at once (a 304 from its strong ETag otherwise).
            "GET /": CachePolicy(no_cache=True),
            "GET /api/books": CachePolicy(max_age=60, stale_while_revalidate=60),
            # vary=: the 304 answered from isbn_etag before the handler runs must carry the
            # Vary: Accept the 200 would (RFC 9110 §15.4.5).
            "GET /api/books/by-isbn/{isbn}": CachePolicy(
                max_age=300, etag=isbn_etag, store=False, vary=("accept",)
            ),
            "GET /api/books/{book_id}": CachePolicy(max_age=60, stale_while_revalidate=60),
            "GET /api/reviews/recent": CachePolicy(max_age=15),
            # Computed by a @cached function; a second copy in the response cache would only
            # add a second expiry to reason about.
            "GET /api/stats": CachePolicy(max_age=300, store=False),
        }
    )


def build(app: FastAPI, db: Database, static_dir: Path) -> None:
    # Added last = outermost: compression wraps the response cache, which therefore stores
    # identity bodies and hashes its ETags from them; compressing weakens them (RFC 9110 §8.8.3).
    # One function cache per app: two example apps in one process (SQLite and PostgreSQL)
    # never share an entry.
    function_cache = Cache(backend=MemoryBackend(max_entries=10_000))
    # A hit or a validator 304 never reaches the router; the cache files it under the route
    # stored with the entry (or the policy's pattern), so traces stay named.
    app.add_middleware(
        ResponseCacheMiddleware, policies=policies(db, function_cache), backend=MemoryBackend()
    )
    app.add_middleware(CompressionMiddleware)
    built = build_assets(static_dir, cache_dir())
    manifest = Manifest.load(built, base_url="/static/")
    page = render_page(static_dir, manifest)
    app.mount("/static", StaticApp(built), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(page, media_type="text/html")

    @app.get("/api/books")
    async def list_books(
        request: Request,
        limit: int = Query(20, ge=1, le=100),
        after: int = Query(0, ge=0, description="keyset cursor: the last id of the previous page"),
        fields: str | None = Query(
            None, description="sparse fieldset, e.g. id,title (default: every field)"
        ),
    ) -> Response:
        try:
            wanted = parse_fields(fields)
        except FieldsError as exc:
            return FastResponse(exc.detail, 400, request=request)
        async with db.sessions() as session:
            books = (
                (
                    await session.execute(
                        select(Book)
                        .options(
                            load_only(*_LIST_COLUMNS),
                            selectinload(Book.author).load_only(Author.id, Author.name),
                        )
                        .where(Book.id > after)
                        .order_by(Book.id)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
        items = [
            BookItem(b.id, b.title, b.genre, b.price, b.published, b.author.name) for b in books
        ]
        try:
            trimmed = apply_fields(items, wanted, model=list[BookItem])
        except FieldsError as exc:
            return FastResponse(exc.detail, 400, request=request)
        cursor = books[-1].id if len(books) == limit else None
        return FastResponse({"items": trimmed, "next": cursor}, request=request)

    @app.get("/api/books/by-isbn/{isbn}")
    async def book_by_isbn(
        request: Request, isbn: str = PathParam(examples=[ISBN_EXAMPLE])
    ) -> Response:
        async with db.sessions() as session:
            book = (
                await session.execute(
                    select(Book)
                    .options(load_only(*_LIST_COLUMNS, Book.updated_at))
                    .where(Book.isbn == isbn)
                )
            ).scalar()
        if book is None:
            raise HTTPException(404, "no such book")
        # The ETag comes from the policy's validator; Last-Modified serves clients that
        # revalidate by date only (RFC 9110 §13.1.3).
        modified = book.updated_at.replace(tzinfo=dt.UTC)
        return FastResponse(
            {"id": book.id, "title": book.title, "price": book.price},
            request=request,
            headers={"Last-Modified": _http_date(modified)},
        )

    async def _summary(book_id: int) -> tuple[int, float | None]:
        async with db.sessions() as session:
            row = (
                await session.execute(
                    select(func.count(Review.id), func.avg(Review.rating)).where(
                        Review.book_id == book_id
                    )
                )
            ).one()
        return int(row[0]), (float(row[1]) if row[1] is not None else None)

    async def _related(author_id: int, book_id: int) -> list[dict[str, Any]]:
        async with db.sessions() as session:
            rows = (
                await session.execute(
                    select(Book.id, Book.title)
                    .where(Book.author_id == author_id, Book.id != book_id)
                    .limit(5)
                )
            ).all()
        return [{"id": r.id, "title": r.title} for r in rows]

    @app.get("/api/books/{book_id}")
    async def book_detail(request: Request, book_id: int = PathParam(examples=[42])) -> Response:
        async with db.sessions() as session:
            book = (
                await session.execute(
                    select(Book)
                    .options(load_only(*_DETAIL_COLUMNS), joinedload(Book.author))
                    .where(Book.id == book_id)
                )
            ).scalar()
        if book is None:
            raise HTTPException(404, "no such book")
        summary, related = await asyncio.gather(
            _summary(book_id), _related(book.author_id, book_id)
        )
        author = book.author
        return FastResponse(
            {
                "id": book.id,
                "title": book.title,
                "isbn": book.isbn,
                "genre": book.genre,
                "price": book.price,
                "published": book.published,
                "pages": book.pages,
                "cover_url": book.cover_url,
                "description": book.description,
                "subtitle": book.subtitle,
                "format": book.format,
                "author": {"id": author.id, "name": author.name, "country": author.country},
                "breadcrumb": [author.name, book.title],
                "reviews": {"count": summary[0], "average": summary[1]},
                "related": related,
            },
            request=request,
        )

    @app.get("/api/reviews/recent")
    async def recent_reviews(request: Request) -> Response:
        async with db.sessions() as session:
            reviews = (
                (
                    await session.execute(
                        select(Review)
                        .options(selectinload(Review.book).load_only(Book.id, Book.title))
                        .order_by(Review.created_at.desc())
                        .limit(30)
                    )
                )
                .scalars()
                .all()
            )
        out = [
            {
                "id": r.id,
                "rating": r.rating,
                "body": r.body,
                "reviewer": r.reviewer,
                "book": {"id": r.book.id, "title": r.book.title},
            }
            for r in reviews
        ]
        return FastResponse(out, request=request)

    # Four counts over the whole catalogue change slowly: computed at most once per 30 s, by
    # one caller when many miss at once (single-flight), served stale for a minute while one
    # background refresh runs, and kept for an hour if the database errors.
    @cached(
        ttl=30,
        key="example:stats",
        stale_while_revalidate=60,
        stale_if_error=3600,
        cache=function_cache,
    )
    async def load_stats() -> dict[str, Any]:
        async with db.sessions() as session:
            row = (
                await session.execute(
                    select(
                        select(func.count(Author.id)).scalar_subquery(),
                        select(func.count(Book.id)).scalar_subquery(),
                        select(func.count(Review.id)).scalar_subquery(),
                        select(func.avg(Review.rating)).scalar_subquery(),
                    )
                )
            ).one()
        return {
            "authors": row[0],
            "books": row[1],
            "reviews": row[2],
            "average_rating": round(float(row[3]), 3),
        }

    app.state.load_stats = load_stats

    @app.get("/api/stats")
    async def stats(request: Request) -> Response:
        return FastResponse(await load_stats(), request=request)


def _http_date(when: dt.datetime) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7)."""
    from email.utils import format_datetime

    return format_datetime(when, usegmt=True)

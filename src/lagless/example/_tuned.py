"""The TUNED shop: the same endpoints with each planted problem fixed by ordinary practice.

The fix for each naive problem, in the order of ``_naive.py``:

- slow middleware: gone (rate limiting belongs in the proxy); GZip (pure ASGI) instead;
- static files: content-hashed names served with ``Cache-Control: immutable`` for a year;
- ``/api/books``: keyset pagination (``LIMIT``), only the listed columns (``load_only``), the
  authors in one extra query (``selectinload``), ``ETag`` + ``Cache-Control`` and 304s;
- ``/api/books/by-isbn``: an index on ``books.isbn`` (see ``TUNED_INDEXES``);
- ``/api/books/{id}``: the author joined in once, the two independent queries run together with
  ``asyncio.gather`` on their own pooled sessions;
- ``/api/reviews/recent``: ``selectinload(Review.book)`` and an index on ``created_at``;
- ``/api/stats``: the async engine, cached for 30 s with ``lagless.cache.cached``.

lagless's own parts do the HTTP work: ``lagless.cache.asgi.ConditionalMiddleware`` adds strong
ETags and answers 304s, ``lagless.payload.CompressionMiddleware`` negotiates gzip/brotli/zstd.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, load_only, selectinload

import lagless
from lagless.cache import cached
from lagless.cache.asgi import ConditionalMiddleware
from lagless.example._db import Database
from lagless.example._models import Author, Book, Review
from lagless.example._seed import isbn_for
from lagless.payload import CompressionMiddleware

ISBN_EXAMPLE = isbn_for(42)
_IMMUTABLE = "public, max-age=31536000, immutable"


def _cached_json(request: Request, payload: Any, *, max_age: int) -> Response:
    """JSON that clients and shared caches may keep for ``max_age`` seconds. The ETag and the
    304 answers come from lagless's ``ConditionalMiddleware`` (RFC 9110 §13)."""
    with lagless.span("json.dumps", kind="serialize"):
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return Response(
        body, media_type="application/json", headers={"Cache-Control": f"public, max-age={max_age}"}
    )


def _fingerprint(static_dir: Path) -> tuple[dict[str, str], dict[str, tuple[bytes, str]]]:
    """Map each asset to a content-hashed name, and the hashed names to their bytes."""
    names: dict[str, str] = {}
    files: dict[str, tuple[bytes, str]] = {}
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for path in sorted(static_dir.iterdir()):
        if path.suffix not in types:
            continue
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()[:10]
        hashed = f"{path.stem}.{digest}{path.suffix}"
        names[path.name] = hashed
        files[hashed] = (data, types[path.suffix])
    return names, files


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


def build(app: FastAPI, db: Database, static_dir: Path) -> None:
    # Added last = outermost: compression wraps the conditional layer, so ETags are computed
    # on the identity body and weakened when compressed (RFC 9110 §8.8.1).
    app.add_middleware(ConditionalMiddleware)
    app.add_middleware(CompressionMiddleware, minimum_size=500)
    names, files = _fingerprint(static_dir)
    page = (static_dir / "index.html").read_text(encoding="utf-8")
    for plain, hashed in names.items():
        page = page.replace(f"/static/{plain}", f"/static/{hashed}")
    page_bytes = page.encode()

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(page_bytes, media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        found = files.get(name)
        if found is None:
            raise HTTPException(404, "no such asset")
        data, media_type = found
        return Response(data, media_type=media_type, headers={"Cache-Control": _IMMUTABLE})

    @app.get("/api/books")
    async def list_books(
        request: Request,
        limit: int = Query(20, ge=1, le=100),
        after: int = Query(0, ge=0, description="keyset cursor: the last id of the previous page"),
    ) -> Response:
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
            {
                "id": b.id,
                "title": b.title,
                "genre": b.genre,
                "price": str(b.price),
                "published": b.published.isoformat(),
                "author": b.author.name,
            }
            for b in books
        ]
        cursor = items[-1]["id"] if len(items) == limit else None
        return _cached_json(request, {"items": items, "next": cursor}, max_age=60)

    @app.get("/api/books/by-isbn/{isbn}")
    async def book_by_isbn(
        request: Request, isbn: str = PathParam(examples=[ISBN_EXAMPLE])
    ) -> Response:
        async with db.sessions() as session:
            book = (
                await session.execute(
                    select(Book).options(load_only(*_LIST_COLUMNS)).where(Book.isbn == isbn)
                )
            ).scalar()
        if book is None:
            raise HTTPException(404, "no such book")
        return _cached_json(
            request,
            {"id": book.id, "title": book.title, "price": str(book.price)},
            max_age=300,
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
        return _cached_json(
            request,
            {
                "id": book.id,
                "title": book.title,
                "isbn": book.isbn,
                "genre": book.genre,
                "price": str(book.price),
                "published": book.published.isoformat(),
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
            max_age=60,
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
        return _cached_json(request, out, max_age=15)

    @cached(ttl=30, key="example:stats")
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

    @app.get("/api/stats")
    async def stats(request: Request) -> Response:
        # Four counts over the whole catalogue change slowly: computed once per 30 s.
        return _cached_json(request, await load_stats(), max_age=300)

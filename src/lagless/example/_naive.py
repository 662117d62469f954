"""The NAIVE shop: every latency anti-pattern lagless detects, committed on purpose.

Each handler says which problem it plants. None of this is contrived: every line is what a
tutorial-level FastAPI + SQLAlchemy app looks like before anyone measured it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import func, select

import lagless
from lagless.example._db import Database
from lagless.example._models import Author, Book, Review
from lagless.example._seed import isbn_for

ISBN_EXAMPLE = isbn_for(42)


def _book(book: Book) -> dict[str, Any]:
    return {c.key: getattr(book, c.key) for c in Book.__table__.columns}


_LISTED = ("id", "title", "author_id", "genre", "price", "published", "format")


def build(app: FastAPI, db: Database, static_dir: Path) -> None:
    # Planted: slow middleware. Every request waits on a (simulated) remote rate-limit check
    # before the handler runs, even for static files.
    @app.middleware("http")
    async def rate_limit(request: Request, call_next: Any) -> Any:
        await asyncio.sleep(0.004)
        return await call_next(request)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(static_dir / "index.html")

    # Planted: static files with no Cache-Control and no compression.
    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    @app.get("/api/books")
    async def list_books() -> JSONResponse:
        """Planted: an unbounded list (no LIMIT) reading all 22 columns of every book to show
        seven, encoded with jsonable_encoder and sent uncompressed without caching headers."""
        async with db.sessions() as session:
            books = (await session.execute(select(Book))).scalars().all()
        with lagless.span("jsonable_encoder", kind="serialize"):
            payload = jsonable_encoder([{k: getattr(b, k) for k in _LISTED} for b in books])
        return JSONResponse(payload)

    @app.get("/api/books/by-isbn/{isbn}")
    async def book_by_isbn(
        isbn: str = PathParam(examples=[ISBN_EXAMPLE]),
    ) -> dict[str, Any]:
        """Planted: a filter on books.isbn, which has no index (a full scan of 12,000 rows)."""
        async with db.sessions() as session:
            book = (await session.execute(select(Book).where(Book.isbn == isbn))).scalar()
        if book is None:
            raise HTTPException(404, "no such book")
        encoded: dict[str, Any] = jsonable_encoder(_book(book))
        return encoded

    @app.get("/api/books/{book_id}")
    async def book_detail(book_id: int = PathParam(examples=[42])) -> dict[str, Any]:
        """Planted: the author fetched twice (duplicate query) and two independent queries
        awaited one after the other (sequential I/O)."""
        async with db.sessions() as session:
            book = (await session.execute(select(Book).where(Book.id == book_id))).scalar()
            if book is None:
                raise HTTPException(404, "no such book")
            author = (
                await session.execute(select(Author).where(Author.id == book.author_id))
            ).scalar_one()
            summary = (
                await session.execute(
                    select(func.count(Review.id), func.avg(Review.rating)).where(
                        Review.book_id == book_id
                    )
                )
            ).one()
            related = (
                (
                    await session.execute(
                        select(Book)
                        .where(Book.author_id == book.author_id, Book.id != book_id)
                        .limit(5)
                    )
                )
                .scalars()
                .all()
            )
            # "the breadcrumb needs the author too": the same query again
            crumb = (
                await session.execute(select(Author).where(Author.id == book.author_id))
            ).scalar_one()
        detail: dict[str, Any] = jsonable_encoder(
            {
                **_book(book),
                "author": {"id": author.id, "name": author.name, "country": author.country},
                "breadcrumb": [crumb.name, book.title],
                "reviews": {"count": summary[0], "average": summary[1]},
                "related": [{"id": b.id, "title": b.title} for b in related],
            }
        )
        return detail

    @app.get("/api/reviews/recent")
    async def recent_reviews() -> list[dict[str, Any]]:
        """Planted: N+1. Each review's book is lazy-loaded on its own query."""
        async with db.sessions() as session:
            reviews = (
                (await session.execute(select(Review).order_by(Review.created_at.desc()).limit(30)))
                .scalars()
                .all()
            )
            out = []
            for review in reviews:
                book = await review.awaitable_attrs.book
                out.append(
                    {
                        "id": review.id,
                        "rating": review.rating,
                        "body": review.body,
                        "reviewer": review.reviewer,
                        "book": {"id": book.id, "title": book.title},
                    }
                )
        return out

    @app.get("/api/stats")
    async def stats() -> dict[str, Any]:
        """Planted: a synchronous database call inside an async handler (it blocks the event
        loop, and every other request with it, for the whole query)."""
        with db.sync_engine.connect() as conn:
            row = conn.execute(
                select(
                    select(func.count(Author.id)).scalar_subquery(),
                    select(func.count(Book.id)).scalar_subquery(),
                    select(func.count(Review.id)).scalar_subquery(),
                    select(func.avg(Review.rating)).scalar_subquery(),
                )
            ).one()
        return {
            "authors": row[0],
            "books": row[1],
            "reviews": row[2],
            "average_rating": round(float(row[3]), 3),
        }

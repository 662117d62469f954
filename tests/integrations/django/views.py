"""Views used by the Django tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.db import connection
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.views import View

from tests.integrations.django.testapp.models import Book


def user(request: Any, pk: int) -> JsonResponse:
    book = Book.objects.filter(pk=pk).first()
    return JsonResponse({"pk": pk, "title": book.title if book else None})


def item(request: Any, slug: str) -> HttpResponse:
    return HttpResponse(slug)


def article(request: Any, year: str) -> HttpResponse:
    return HttpResponse(year)


def books(request: Any) -> JsonResponse:
    titles = [b.title for b in Book.objects.filter(pages__gte=20).order_by("pk")]
    return JsonResponse({"titles": titles, "count": Book.objects.count()})


def boom(request: Any) -> HttpResponse:
    raise RuntimeError("view exploded")


def bad_query(request: Any) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table WHERE id = %s", [7])
    return HttpResponse("unreachable")


def stream(request: Any) -> StreamingHttpResponse:
    def body() -> Iterator[bytes]:
        for pk in (1, 2, 3):
            # Queries while streaming belong to the request's trace.
            yield Book.objects.get(pk=pk).title.encode() + b"\n"

    return StreamingHttpResponse(body())


def async_stream(request: Any) -> StreamingHttpResponse:
    async def body() -> AsyncIterator[bytes]:
        for i in range(3):
            await asyncio.sleep(0)
            yield f"chunk {i}\n".encode()

    return StreamingHttpResponse(body())


async def async_user(request: Any, pk: int) -> JsonResponse:
    book = await Book.objects.filter(pk=pk).afirst()
    return JsonResponse({"pk": pk, "title": book.title if book else None})


class BookView(View):
    def get(self, request: Any) -> HttpResponse:
        return HttpResponse(str(Book.objects.count()))


#: Set by the concurrency test: both requests wait here, so they are in flight together.
BARRIER: threading.Barrier | None = None


def together(request: Any, pk: int) -> JsonResponse:
    if BARRIER is not None:
        BARRIER.wait()
    title = Book.objects.get(pk=pk).title
    if BARRIER is not None:
        BARRIER.wait()
    return JsonResponse({"title": title, "count": Book.objects.filter(pk=pk).count()})


def write_many(request: Any) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.executemany(
            "UPDATE testapp_book SET pages = pages WHERE id = %s", [(1,), (2,), (3,)]
        )
        cursor.execute("UPDATE testapp_book SET pages = pages WHERE id <= %s", [2])
    return HttpResponse("ok")


def orm_and_driver(request: Any) -> HttpResponse:
    """One ORM query, then one statement straight on the sqlite3 connection underneath."""
    count = Book.objects.count()
    connection.connection.execute("SELECT 1").fetchall()
    return HttpResponse(str(count))


def with_timing(request: Any) -> HttpResponse:
    response = HttpResponse("x")
    response["Server-Timing"] = "cdn;dur=1"
    return response

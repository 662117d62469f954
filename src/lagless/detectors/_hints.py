"""Which framework and ORM a trace came from, so a fix names the user's own tool.

A fix that says "use select_related" to a SQLAlchemy user is noise; each detector asks
:func:`stack_of` and words its advice for that stack, falling back to naming both ORMs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from lagless._trace import Span, Trace

Orm = Literal["django", "sqlalchemy", "unknown"]


@dataclass(frozen=True)
class Stack:
    framework: str  # django, flask, fastapi, starlette, litestar, or "" when unknown
    orm: Orm


def stack_of(trace: Trace, spans: Iterable[Span] = ()) -> Stack:
    framework = str(trace.attrs.get("framework") or "").lower()
    orm: Orm = "unknown"
    for span in spans:
        driver = str(span.get("driver") or "").lower()
        if "sqlalchemy" in driver:
            orm = "sqlalchemy"
            break
        if "django" in driver:
            orm = "django"
            break
    if orm == "unknown" and framework == "django":
        orm = "django"
    return Stack(framework, orm)


def orm_advice(stack: Stack, *, django: str, sqlalchemy: str) -> str:
    """The advice for the trace's ORM, capitalised as a sentence; both when unknown."""
    if stack.orm == "django":
        return django[:1].upper() + django[1:]
    if stack.orm == "sqlalchemy":
        return sqlalchemy[:1].upper() + sqlalchemy[1:]
    return f"Django: {django} SQLAlchemy: {sqlalchemy}"


def compression_tool(framework: str) -> str:
    return {
        "django": "django.middleware.gzip.GZipMiddleware (or lagless's compression middleware)",
        "flask": "Flask-Compress (or lagless's WSGI compression middleware)",
        "fastapi": "fastapi.middleware.gzip.GZipMiddleware (or lagless's ASGI compression "
        "middleware)",
        "starlette": "starlette.middleware.gzip.GZipMiddleware (or lagless's ASGI compression "
        "middleware)",
        "litestar": "Litestar's CompressionConfig(backend='gzip' or 'brotli')",
    }.get(
        framework,
        "a gzip/brotli compression middleware (Starlette GZipMiddleware, Django "
        "GZipMiddleware, Flask-Compress, Litestar CompressionConfig)",
    )

"""The bundled example: a small bookshop API in two modes, for ``lagless doctor`` and demos.

``naive`` commits every latency anti-pattern lagless detects, on purpose; ``tuned`` is the same
API fixed with ordinary best practice and lagless's own cache and payload parts. Both run on
an embedded, cached SQLite database by default, or on PostgreSQL::

    from lagless.example import create_app
    app = create_app("naive")                      # FastAPI app, not yet instrumented
    app = create_app("tuned", db_url="postgresql://postgres@127.0.0.1/test")

``lagless example serve --mode tuned --port 8000`` serves it with uvicorn, instrumented.
Needs the ``example`` extra (FastAPI, SQLAlchemy, aiosqlite; msgspec, brotli and zstandard
for the tuned mode's payload parts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

from lagless.errors import LaglessError

if TYPE_CHECKING:
    from fastapi import FastAPI

MODES: Final[tuple[str, ...]] = ("naive", "tuned")
STATIC_DIR: Final[Path] = Path(__file__).parent / "static"

__all__ = ["MODES", "STATIC_DIR", "create_app"]


def create_app(
    mode: str = "naive", *, db_url: str | None = None, schema: str | None = None
) -> FastAPI:
    """Build the example app in ``mode`` (``"naive"`` or ``"tuned"``) on ``db_url`` (default:
    the seeded SQLite file in the cache directory, built on first use in about a second).
    On PostgreSQL the tables live in ``schema`` (default ``lagless_example_<mode>``), seeded
    once."""
    if mode not in MODES:
        raise LaglessError(f"unknown example mode {mode!r}; choose one of {', '.join(MODES)}")
    try:
        from fastapi import FastAPI

        from lagless.example import _naive, _tuned
        from lagless.example._db import open_database
    except ImportError as exc:
        raise LaglessError(
            f"the example needs {exc.name or 'its dependencies'} "
            "(FastAPI, SQLAlchemy, msgspec): pip install 'lagless[example]'"
        ) from None

    db = open_database(mode, db_url, schema=schema)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await db.dispose()

    app = FastAPI(
        title=f"lagless example bookshop ({mode})",
        version="1.0",
        lifespan=lifespan,
        description="A small bookshop API; see `lagless doctor` and docs/doctor.md.",
    )
    app.state.lagless_example_mode = mode
    app.state.database = db
    (_naive if mode == "naive" else _tuned).build(app, db, STATIC_DIR)
    return app

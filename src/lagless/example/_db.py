"""Engines for the example shop: SQLite (embedded default) or a server database via ``--db``.

The naive mode opens a new connection per request (``NullPool``) and also keeps a synchronous
engine, which its ``/api/stats`` handler calls from the event loop; the tuned mode uses pooled
async engines only. On PostgreSQL each mode lives in its own schema (through SQLAlchemy's
``schema_translate_map``), because they differ in their indexes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from lagless.errors import LaglessError


@dataclasses.dataclass
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    sync_engine: Engine
    url: str

    async def dispose(self) -> None:
        await self.engine.dispose()
        self.sync_engine.dispose()


def _urls(
    db_url: str | None, mode: str, schema: str | None = None
) -> tuple[str, str, dict[str, Any]]:
    """(async URL, sync URL, execution options) for ``db_url`` (None: the cached SQLite file)."""
    if db_url is None:
        from lagless.example._seed import sqlite_path

        seeded = sqlite_path(mode)
        return f"sqlite+aiosqlite:///{seeded}", f"sqlite:///{seeded}", {}
    url = make_url(db_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = url.database or ""
        return f"sqlite+aiosqlite:///{path}", f"sqlite:///{path}", {}
    if backend == "postgresql":
        from lagless.example._seed import seed_sqlalchemy

        schema = schema or f"lagless_example_{mode}"
        sync_url = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        async_url = url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        seed_sqlalchemy(sync_url, mode, schema)
        return async_url, sync_url, {"schema_translate_map": {None: schema}}
    raise LaglessError(
        f"the example runs on SQLite or PostgreSQL; {backend!r} is not supported ({db_url})"
    )


def open_database(mode: str, db_url: str | None = None, *, schema: str | None = None) -> Database:
    async_url, sync_url, options = _urls(db_url, mode, schema)
    kwargs: dict[str, Any] = {"execution_options": options} if options else {}
    if mode == "naive":
        # Planted: a fresh connection for every session (no pool), so every request pays
        # the connect cost.
        engine = create_async_engine(async_url, poolclass=NullPool, **kwargs)
    else:
        engine = create_async_engine(async_url, pool_size=8, max_overflow=8, **kwargs)
    sync_engine = create_engine(sync_url, poolclass=NullPool, **kwargs)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    return Database(engine, sessions, sync_engine, async_url)

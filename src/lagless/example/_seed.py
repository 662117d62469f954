"""Seed data for the example shop, generated fast and cached.

Tens of thousands of rows, so the planted problems cost real time: a full scan of 12,000 books
or 48,000 reviews is measurable, an N+1 over 30 reviews is 30 round trips. Generation is
deterministic (a seeded ``random.Random``) and uses bulk inserts; the SQLite file is built once
into the user's cache directory, keyed by :data:`SEED_VERSION` and the mode (the two modes differ
only in their indexes), and reused by every later run. Bump ``SEED_VERSION`` whenever the schema
or the data changes.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

SEED_VERSION: Final[int] = 2
AUTHORS: Final[int] = 1_500
BOOKS: Final[int] = 12_000
REVIEWS: Final[int] = 48_000
_SEED: Final[int] = 20_260_101

_WORDS = [
    "river",
    "silent",
    "garden",
    "winter",
    "empire",
    "shadow",
    "letter",
    "glass",
    "orchard",
    "harbor",
    "distant",
    "quiet",
    "atlas",
    "copper",
    "lantern",
    "meadow",
    "storm",
    "echo",
    "paper",
    "island",
    "northern",
    "velvet",
    "hollow",
    "summer",
    "machine",
    "ember",
    "signal",
    "thread",
    "marble",
    "forest",
    "ledger",
    "crown",
    "salt",
    "mirror",
    "tide",
    "falcon",
]
_FIRST = [
    "Ada",
    "Ben",
    "Clara",
    "Dmitri",
    "Elena",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemi",
    "Lena",
    "Marco",
    "Nadia",
    "Omar",
]
_LAST = [
    "Achebe",
    "Borges",
    "Calvino",
    "Duras",
    "Eco",
    "Ferrante",
    "Grass",
    "Hesse",
    "Ishiguro",
    "Jansson",
    "Kundera",
    "Lem",
]
_COUNTRIES = [
    "Nigeria",
    "Argentina",
    "Italy",
    "France",
    "Japan",
    "Germany",
    "Sweden",
    "Poland",
    "Chile",
    "India",
    "Canada",
]
_GENRES = [
    "fiction",
    "mystery",
    "history",
    "science",
    "poetry",
    "travel",
    "fantasy",
    "biography",
    "essays",
    "drama",
]
_LANGUAGES = ["en", "fr", "de", "es", "it", "ja", "pt"]
_FORMATS = ["hardcover", "paperback", "ebook", "audiobook"]
_EPOCH = dt.datetime(2020, 1, 1)


def isbn_for(book_id: int) -> str:
    """The ISBN-13 of book ``book_id`` (valid check digit), so examples can name one."""
    stem = f"978{book_id:09d}"
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(stem))
    return stem + str((10 - total % 10) % 10)


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(_WORDS, k=words)).capitalize() + "."


def authors() -> Iterator[tuple[Any, ...]]:
    rng = random.Random(_SEED)
    for i in range(1, AUTHORS + 1):
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        yield (i, name, rng.choice(_COUNTRIES), _sentence(rng, 14))


def books() -> Iterator[tuple[Any, ...]]:
    rng = random.Random(_SEED + 1)
    for i in range(1, BOOKS + 1):
        title = " ".join(rng.choices(_WORDS, k=rng.randint(2, 4))).title()
        published = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(27_000))
        yield (
            i,
            rng.randint(1, AUTHORS),
            title,
            isbn_for(i),
            rng.choice(_GENRES),
            f"{rng.randint(500, 4500) / 100:.2f}",
            published.isoformat(),
            rng.randint(90, 900),
            f"https://covers.example.org/{i}.jpg",
            _sentence(rng, 18),
            _sentence(rng, 5),
            rng.choice(_LANGUAGES),
            f"{rng.choice(_LAST)} & {rng.choice(_LAST)}",
            rng.randint(1, 6),
            rng.choice(_FORMATS),
            rng.randint(150, 1800),
            rng.randint(170, 300),
            rng.randint(110, 220),
            rng.randint(8, 70),
            rng.randint(0, 400),
            (_EPOCH + dt.timedelta(seconds=rng.randrange(100_000_000))).isoformat(sep=" "),
            (_EPOCH + dt.timedelta(seconds=rng.randrange(100_000_000, 150_000_000))).isoformat(
                sep=" "
            ),
        )


def reviews() -> Iterator[tuple[Any, ...]]:
    rng = random.Random(_SEED + 2)
    for i in range(1, REVIEWS + 1):
        created = _EPOCH + dt.timedelta(seconds=rng.randrange(150_000_000))
        yield (
            i,
            rng.randint(1, BOOKS),
            f"reader{rng.randint(1, 9000)}",
            rng.randint(1, 5),
            _sentence(rng, 12),
            created.isoformat(sep=" "),
        )


def cache_dir() -> Path:
    """Where seeded databases live: the ``cache_dir`` setting (``LAGLESS_CACHE_DIR``), else
    ``$XDG_CACHE_HOME/lagless``, else ``~/.cache/lagless``."""
    from lagless._runtime import get_runtime

    explicit = get_runtime().config.cache_dir
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "lagless"


def sqlite_path(mode: str) -> Path:
    """The seeded SQLite database for ``mode``, built on first use."""
    folder = cache_dir()
    path = folder / f"example-v{SEED_VERSION}-{mode}.sqlite3"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: a second process racing us, or an interrupted build,
    # never leaves a half-seeded file under the final name.
    fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        _build_sqlite(Path(tmp), mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _build_sqlite(path: Path, mode: str) -> None:
    from sqlalchemy import create_engine

    from lagless.example._models import TUNED_INDEXES, Base

    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        with conn:
            conn.executemany("INSERT INTO authors VALUES (?,?,?,?)", authors())
            conn.executemany(f"INSERT INTO books VALUES ({','.join('?' * 22)})", books())
            conn.executemany("INSERT INTO reviews VALUES (?,?,?,?,?,?)", reviews())
            if mode == "tuned":
                for name, table, column in TUNED_INDEXES:
                    conn.execute(f"CREATE INDEX {name} ON {table} ({column})")
        conn.execute("ANALYZE")
    finally:
        conn.close()


def seed_sqlalchemy(sync_url: str, mode: str, schema: str) -> None:
    """Create and seed the example's tables in ``schema`` of a server database (PostgreSQL),
    once: a marker table records the seed version, so restarts skip the work."""
    from sqlalchemy import create_engine, insert, text

    from lagless.example._models import TUNED_INDEXES, Author, Base, Book, Review

    engine = create_engine(sync_url, execution_options={"schema_translate_map": {None: schema}})
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            conn.execute(
                text(f'CREATE TABLE IF NOT EXISTS "{schema}".lagless_seed (version integer)')
            )
            done = conn.execute(text(f'SELECT version FROM "{schema}".lagless_seed')).scalar()
            if done == SEED_VERSION:
                return
            Base.metadata.drop_all(conn)
            Base.metadata.create_all(conn)
            for model, rows, batch in ((Author, authors(), 2000), (Book, books(), 2000)):
                _insert_batches(conn, insert(model), model, rows, batch)
            _insert_batches(conn, insert(Review), Review, reviews(), 4000)
            if mode == "tuned":
                for name, table, column in TUNED_INDEXES:
                    conn.execute(text(f'CREATE INDEX {name} ON "{schema}".{table} ({column})'))
            conn.execute(text(f'ANALYZE "{schema}".books'))
            conn.execute(text(f'ANALYZE "{schema}".reviews'))
            conn.execute(text(f'DELETE FROM "{schema}".lagless_seed'))
            conn.execute(
                text(f'INSERT INTO "{schema}".lagless_seed VALUES (:v)'), {"v": SEED_VERSION}
            )
    finally:
        engine.dispose()


def _insert_batches(
    conn: Any, stmt: Any, model: Any, rows: Iterator[tuple[Any, ...]], size: int
) -> None:
    columns = [c.key for c in model.__table__.columns]
    batch: list[dict[str, Any]] = []
    for row in rows:
        item = dict(zip(columns, row, strict=True))
        batch.append(_typed(item))
        if len(batch) >= size:
            conn.execute(stmt, batch)
            batch = []
    if batch:
        conn.execute(stmt, batch)


def _typed(item: dict[str, Any]) -> dict[str, Any]:
    """Seed rows carry ISO strings (what sqlite3 stores); server drivers want real types."""
    from decimal import Decimal

    if "published" in item:
        item["published"] = dt.date.fromisoformat(item["published"])
        item["price"] = Decimal(item["price"])
    for key in ("created_at", "updated_at"):
        if key in item:
            item[key] = dt.datetime.fromisoformat(item[key])
    return item

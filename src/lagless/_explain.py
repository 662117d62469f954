"""Running EXPLAIN on recorded SELECTs, off the request path, to find missing indexes.

An :class:`Explainer` owns one *separate* database connection (never the application's) and
plans statements with the database's own planner: SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL
``EXPLAIN (FORMAT JSON)``, MySQL/MariaDB ``EXPLAIN FORMAT=JSON``. It never runs EXPLAIN ANALYZE
(which executes the query) and refuses anything but a SELECT before touching the connection;
PostgreSQL and MySQL sessions are read-only and time-limited besides.

From a plan it keeps the full table scans that filter on a column compared with a value, on a
table of at least ``min_table_rows`` rows (pghero's 500: below that a scan is as fast as an
index), when no index of the table starts with any of those columns. Each becomes an
:class:`IndexAdvice` with the exact ``CREATE INDEX`` to run.

**Placeholders.** Statements are recorded with placeholders and without their values, and a
planner needs something in their place:

- PostgreSQL >= 16 plans them as they are with ``EXPLAIN (GENERIC_PLAN)``. Older servers (this
  project's CI runs 15) get the same generic plan another way: the statement is ``PREPARE``\\ d
  (the server infers each parameter's type from its context) and ``EXPLAIN EXECUTE`` d with
  ``plan_cache_mode = force_generic_plan`` and NULL arguments. A generic plan is built without
  looking at the arguments, so the NULLs cannot constant-fold ``col = $1`` away; which index is
  usable for ``col = $1`` does not depend on the value.
- SQLite plans at prepare time, before values are bound, so NULLs are bound only because the
  driver insists on a value per placeholder.
- MySQL/MariaDB have no generic plan, so the integer ``1`` stands in (``LIMIT ?`` needs an
  integer). A dummy value can change the plan (a VARCHAR column compared with a number cannot
  use its index), which is why advice is only given when the catalog shows *no* index starting
  with the filtered column: then the scan is real whatever the value, and the advice sound.

**Off the hot path.** :meth:`Explainer.observe` is a runtime listener that only queues a
statement shape (sampled, bounded, each shape once); a background thread or an explicit
:meth:`Explainer.run_pending` plans them. ``lagless doctor`` and :func:`lagless.detect` call
:meth:`Explainer.explain` after the requests ran. Results are cached per fingerprint.
"""

from __future__ import annotations

import abc
import collections
import itertools
import json
import queue
import random
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import unquote, urlsplit

from lagless._guard import report_internal_error
from lagless._sql import fingerprint, is_select
from lagless.errors import ConfigError

if TYPE_CHECKING:
    from lagless._trace import Trace

Dialect = Literal["sqlite", "postgresql", "mysql"]

#: A table without a row estimate is counted up to this many times ``min_table_rows``.
COUNT_CAP_FACTOR: Final = 100

#: ``db.system`` spellings of each dialect.
DIALECT_NAMES: Final[dict[str, Dialect]] = {
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}


@dataclass(frozen=True)
class IndexAdvice:
    """A full scan an index would avoid, and the statement that creates that index."""

    table: str
    columns: tuple[str, ...]
    rows: int
    create_index: str
    plan: str
    dialect: Dialect
    #: ``rows`` is a lower bound: the count stopped there (SQLite keeps no row estimate).
    rows_at_least: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "columns": list(self.columns),
            "rows": self.rows,
            "create_index": self.create_index,
            "plan": self.plan,
            "dialect": self.dialect,
            "rows_at_least": self.rows_at_least,
        }


# -- placeholders ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placeholder:
    start: int
    end: int
    name: str | None  # None: positional; "$3": numbered; else a name
    pyformat: bool = False  # %s or %(name)s, whose driver also un-escapes %%


_NAMED_PCT = re.compile(r"%\((\w+)\)s")
_NUMBERED = re.compile(r"\$(\d+)")
_COLON = re.compile(r":(\w+)")


def find_placeholders(sql: str) -> list[_Placeholder]:
    """Placeholders of any DB-API paramstyle (``?``, ``%s``, ``%(n)s``, ``:n``, ``$1``) and
    ``%%`` escapes, outside string literals, quoted identifiers and comments."""
    out: list[_Placeholder] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
            continue
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
            continue
        if sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if c == "%":
            if sql.startswith("%%", i):  # an escaped percent sign, not a placeholder
                i += 2
                continue
            if sql.startswith("%s", i):
                out.append(_Placeholder(i, i + 2, None, pyformat=True))
                i += 2
                continue
            m = _NAMED_PCT.match(sql, i)
            if m:
                out.append(_Placeholder(i, m.end(), m.group(1), pyformat=True))
                i = m.end()
                continue
        elif c == "?":
            out.append(_Placeholder(i, i + 1, None))
        elif c == "$":
            m = _NUMBERED.match(sql, i)
            if m:
                out.append(_Placeholder(i, m.end(), f"${m.group(1)}"))
                i = m.end()
                continue
        elif c == ":" and (i == 0 or sql[i - 1] != ":") and not sql.startswith("::", i):
            m = _COLON.match(sql, i)
            if m and not m.group(1).isdigit():
                out.append(_Placeholder(i, m.end(), m.group(1)))
                i = m.end()
                continue
        i += 1
    return out


def rewrite_placeholders(sql: str, style: Literal["qmark", "numeric", "format"]) -> tuple[str, int]:
    """``sql`` with every placeholder in one style (``?``, ``$k`` or ``%s``) and how many
    parameters it now takes. In ``numeric`` style a name used twice keeps one number.

    Percent signs follow the drivers: a statement with ``%s``-style placeholders had its
    literal ``%`` doubled by its driver (psycopg, pymysql), which is undone for ``qmark`` and
    ``numeric``; a statement in another style going to ``format`` gets its ``%`` doubled."""
    found = find_placeholders(sql)
    pyformat = any(ph.pyformat for ph in found)

    def text(segment: str) -> str:
        if pyformat and style != "format":
            return segment.replace("%%", "%")
        if not pyformat and style == "format" and found:
            return segment.replace("%", "%%")
        return segment

    parts: list[str] = []
    last = 0
    named: dict[str, int] = {}
    next_k = 1
    total = 0
    for ph in found:
        parts.append(text(sql[last : ph.start]))
        last = ph.end
        if style != "numeric":
            total += 1
            parts.append("?" if style == "qmark" else "%s")
            continue
        if ph.name is not None and ph.name.startswith("$"):
            k = int(ph.name[1:])
        elif ph.name is not None:
            if ph.name not in named:
                named[ph.name] = next_k
                next_k += 1
            k = named[ph.name]
        else:
            k = next_k
            next_k += 1
        total = max(total, k)
        parts.append(f"${k}")
    parts.append(text(sql[last:]))
    return "".join(parts), total


# -- reading plans -----------------------------------------------------------------------------

_CAST = re.compile(r"::\"?[\w ]+\"?(?:\[\])?")
_IDENT = r"(?:[`\"]?[\w$]+[`\"]?\.){0,2}[`\"]?[A-Za-z_][\w$]*[`\"]?"
_VALUE = r"(?:\$\d+|\?|%s|'(?:[^']|'')*'|-?\d+(?:\.\d+)?|NULL\b)"
_EQ_OPS = r"(?:=\s*ANY|=|\bIN\b|<=>)"
_RANGE_OPS = r"(?:<>|!=|<=|>=|<|>|\bBETWEEN\b)"
_COL_OP_VAL = re.compile(rf"({_IDENT})\s*({_EQ_OPS}|{_RANGE_OPS})\s*\(?\s*{_VALUE}", re.I)
_VAL_OP_COL = re.compile(rf"{_VALUE}\s*({_EQ_OPS}|{_RANGE_OPS})\s*({_IDENT})", re.I)
_CLAUSE_END = re.compile(
    r"\b(?:group\s+by|order\s+by|limit|having|offset|fetch|for\s+update|union|window)\b", re.I
)
_WHERE = re.compile(r"\bwhere\b", re.I)
_FROM_ITEM = re.compile(
    rf"\b(?:from|join)\s+({_IDENT})(?:\s+(?:as\s+)?(?!(?:where|join|on|inner|left|right|full|"
    r"cross|natural|group|order|limit|using|offset|having|union|window|for|straight_join)\b)"
    r"([`\"]?\w+[`\"]?))?",
    re.I,
)
_KEYWORDS: Final = frozenset({"and", "or", "not", "null", "true", "false", "any", "in", "is"})


def _unquote(ident: str) -> str:
    return ident.strip('`"[]')


@dataclass(frozen=True)
class FilterColumn:
    qualifier: str | None
    column: str
    equality: bool


def filter_columns(condition: str) -> list[FilterColumn]:
    """Columns compared with a value (a placeholder, literal or NULL) in a condition: the ones
    an index could serve. Column-to-column comparisons (join conditions) are left out."""
    text = _CAST.sub("", condition).replace("(", " ( ").replace(")", " ) ")
    text = re.sub(r"\(\s*", "(", text)
    text = re.sub(r"\s*\)", ")", text).replace("(", " ").replace(")", " ")
    found: list[FilterColumn] = []
    for match in _COL_OP_VAL.finditer(text):
        found.append(_column(match.group(1), match.group(2)))
    for match in _VAL_OP_COL.finditer(text):
        found.append(_column(match.group(2), match.group(1)))
    seen: set[tuple[str | None, str]] = set()
    out = []
    for col in found:
        if col.column.lower() in _KEYWORDS or (col.qualifier, col.column) in seen:
            continue
        seen.add((col.qualifier, col.column))
        out.append(col)
    return out


def _column(ident: str, op: str) -> FilterColumn:
    parts = [_unquote(p) for p in ident.split(".")]
    qualifier = parts[-2] if len(parts) >= 2 else None
    equality = op.strip().upper().startswith(("=", "IN", "<=>"))
    return FilterColumn(qualifier, parts[-1], equality)


def where_clause(sql: str) -> str:
    """The text after the last top-level WHERE up to GROUP BY/ORDER BY/LIMIT (best effort)."""
    matches = list(_WHERE.finditer(sql))
    if not matches:
        return ""
    rest = sql[matches[-1].end() :]
    end = _CLAUSE_END.search(rest)
    return rest[: end.start()] if end else rest


def table_aliases(sql: str) -> dict[str, str]:
    """``{alias or table name (lower-case): table}`` from FROM and JOIN clauses."""
    out: dict[str, str] = {}
    for match in _FROM_ITEM.finditer(sql):
        table = _unquote(match.group(1).split(".")[-1])
        out[table.lower()] = table
        if match.group(2):
            out[_unquote(match.group(2)).lower()] = table
    return out


@dataclass(frozen=True)
class _Scan:
    table: str
    alias: str
    condition: str
    plan: str


def _index_name(table: str, columns: Iterable[str]) -> str:
    name = "ix_" + "_".join([table, *columns]).lower()
    return re.sub(r"[^a-z0-9_]", "_", name)[:63]


# -- dialects ----------------------------------------------------------------------------------


class _Dialect(abc.ABC):
    name: Dialect
    quote_char = '"'

    def quote(self, ident: str) -> str:
        if re.fullmatch(r"[a-z_][a-z0-9_]*", ident):
            return ident
        q = self.quote_char
        return q + ident.replace(q, q + q) + q

    @abc.abstractmethod
    def scans(self, conn: Any, sql: str, timeout_ms: int) -> list[_Scan]:
        """The filtered full scans in ``sql``'s plan (never ANALYZE: nothing runs)."""

    @abc.abstractmethod
    def columns(self, conn: Any, table: str) -> list[str]:
        """The columns of ``table``, as the database spells them."""

    @abc.abstractmethod
    def indexed(self, conn: Any, table: str) -> set[str]:
        """Lower-cased columns that lead some index of ``table``."""

    def estimate(self, conn: Any, table: str) -> int:
        return -1

    def finish(self, conn: Any) -> None:  # noqa: B027 (a default: only PostgreSQL overrides)
        """End the read-only transaction the checks ran in; SQLite's and MySQL's checks open
        none, so by default there is nothing to end."""

    def bounded_count(self, conn: Any, table: str, limit: int) -> int:
        cur = conn.cursor()
        try:
            cur.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {self.quote(table)} LIMIT {limit}) s")
            return int(cur.fetchone()[0])
        finally:
            cur.close()


class _SQLite(_Dialect):
    name: Dialect = "sqlite"
    _SCAN = re.compile(r"^SCAN (?:TABLE )?(\S+)(?: AS (\S+))?$")

    def scans(self, conn: Any, sql: str, timeout_ms: int) -> list[_Scan]:
        text, count = rewrite_placeholders(sql, "qmark")
        rows = conn.execute("EXPLAIN QUERY PLAN " + text, (None,) * count).fetchall()
        aliases = table_aliases(text)
        where = where_clause(text)
        out = []
        for row in rows:
            detail = str(row[-1])
            match = self._SCAN.match(detail)
            if not match:
                continue
            shown = match.group(2) or match.group(1)
            table = aliases.get(shown.lower(), match.group(1))
            out.append(_Scan(table, shown, where, detail))
        return out

    def columns(self, conn: Any, table: str) -> list[str]:
        return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({self.quote(table)})")]

    def indexed(self, conn: Any, table: str) -> set[str]:
        lead: set[str] = set()
        for idx in conn.execute(f"PRAGMA index_list({self.quote(table)})").fetchall():
            info = conn.execute(f"PRAGMA index_info({self.quote(str(idx[1]))})").fetchall()
            first = [r for r in info if r[0] == 0]
            if first and first[0][2] is not None:
                lead.add(str(first[0][2]).lower())
        for col in conn.execute(f"PRAGMA table_info({self.quote(table)})").fetchall():
            if col[5] == 1 and str(col[2]).upper() == "INTEGER":  # rowid alias
                lead.add(str(col[1]).lower())
        return lead


class _Postgres(_Dialect):
    name: Dialect = "postgresql"
    _counter = itertools.count(1)

    def __init__(self) -> None:
        super().__init__()
        self._qualified: set[str] = set()

    def quote(self, ident: str) -> str:
        if ident in self._qualified:
            schema, _, table = ident.partition(".")
            return f"{super().quote(schema)}.{super().quote(table)}"
        return super().quote(ident)

    def scans(self, conn: Any, sql: str, timeout_ms: int) -> list[_Scan]:
        text, count = rewrite_placeholders(sql, "numeric")
        cur = conn.cursor()
        cur.execute("SET TRANSACTION READ ONLY")
        cur.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        if count == 0:
            cur.execute("EXPLAIN (VERBOSE, FORMAT JSON) " + text)
            plan = cur.fetchone()[0]
        elif conn.info.server_version >= 160000:
            cur.execute("EXPLAIN (VERBOSE, GENERIC_PLAN, FORMAT JSON) " + text)
            plan = cur.fetchone()[0]
        else:
            name = f"lagless_explain_{next(self._counter)}"
            cur.execute(f"PREPARE {name} AS {text}")
            try:
                cur.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                args = ", ".join(["NULL"] * count)
                cur.execute(f"EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE {name}({args})")
                plan = cur.fetchone()[0]
            finally:
                cur.execute(f"DEALLOCATE {name}")
        if isinstance(plan, str):
            plan = json.loads(plan)
        out: list[_Scan] = []
        self._walk(plan[0]["Plan"], out)
        return out

    def _walk(self, node: dict[str, Any], out: list[_Scan]) -> None:
        if node.get("Node Type") == "Seq Scan" and node.get("Filter"):
            table = str(node["Relation Name"])
            alias = str(node.get("Alias") or table)
            # VERBOSE plans name the schema: a table outside ``public`` (schema-per-tenant
            # apps, SQLAlchemy ``schema=``) must be looked up and indexed by qualified name,
            # since this separate connection's search_path may not reach it.
            schema = node.get("Schema")
            if schema and schema != "public":
                table = f"{schema}.{table}"
                self._qualified.add(table)
            out.append(
                _Scan(
                    table,
                    alias,
                    str(node["Filter"]),
                    f"Seq Scan on {table} Filter: {node['Filter']}",
                )
            )
        for child in node.get("Plans", ()):
            self._walk(child, out)

    def _regclass(self, table: str) -> str:
        return self.quote(table)

    def columns(self, conn: Any, table: str) -> list[str]:
        cur = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped",
            (self._regclass(table),),
        )
        return [str(r[0]) for r in cur.fetchall()]

    def indexed(self, conn: Any, table: str) -> set[str]:
        cur = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass(%s)",
            (self._regclass(table),),
        )
        return {str(r[0]).lower() for r in cur.fetchall()}

    def estimate(self, conn: Any, table: str) -> int:
        cur = conn.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            (self._regclass(table),),
        )
        row = cur.fetchone()
        return int(row[0]) if row and row[0] is not None else -1

    def finish(self, conn: Any) -> None:
        conn.rollback()


class _MySQL(_Dialect):
    name: Dialect = "mysql"
    quote_char = "`"

    def scans(self, conn: Any, sql: str, timeout_ms: int) -> list[_Scan]:
        text, count = rewrite_placeholders(sql, "format")
        cur = conn.cursor()
        try:
            if count:
                cur.execute("EXPLAIN FORMAT=JSON " + text, (1,) * count)
            else:
                cur.execute("EXPLAIN FORMAT=JSON " + text)
            plan = json.loads(cur.fetchone()[0])
        finally:
            cur.close()
        aliases = table_aliases(text)
        out: list[_Scan] = []
        self._walk(plan, aliases, out)
        return out

    def _walk(self, node: Any, aliases: dict[str, str], out: list[_Scan]) -> None:
        if isinstance(node, dict):
            if node.get("access_type") == "ALL" and node.get("attached_condition"):
                shown = str(node["table_name"])
                table = aliases.get(shown.lower(), shown)
                cond = str(node["attached_condition"])
                out.append(_Scan(table, shown, cond, f"ALL on {shown}: {cond}"))
            for value in node.values():
                self._walk(value, aliases, out)
        elif isinstance(node, list):
            for item in node:
                self._walk(item, aliases, out)

    def _query(self, conn: Any, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        cur = conn.cursor()
        try:
            cur.execute(sql, args)
            return list(cur.fetchall())
        finally:
            cur.close()

    def columns(self, conn: Any, table: str) -> list[str]:
        rows = self._query(
            conn,
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
        return [str(r[0]) for r in rows]

    def indexed(self, conn: Any, table: str) -> set[str]:
        rows = self._query(
            conn,
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND SEQ_IN_INDEX = 1",
            (table,),
        )
        return {str(r[0]).lower() for r in rows}

    def estimate(self, conn: Any, table: str) -> int:
        rows = self._query(
            conn,
            "SELECT TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else -1


_DIALECTS: Final[dict[str, type[_Dialect]]] = {
    "sqlite": _SQLite,
    "postgresql": _Postgres,
    "mysql": _MySQL,
}


# -- connections -------------------------------------------------------------------------------


def connector_for_url(url: str) -> tuple[Dialect, Callable[[], Any]]:
    """The dialect and a function opening a *new* connection for a database URL.

    Accepts SQLAlchemy-style URLs (``postgresql+psycopg://``, ``sqlite+aiosqlite:///x.db``,
    ``mysql+pymysql://``), plain libpq DSNs (``postgresql://``), ``mariadb://`` and SQLite file
    paths. SQLite files are opened read-only.
    """
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if not scheme:
        if url in ("", ":memory:"):
            raise ConfigError(
                "an in-memory SQLite database cannot be EXPLAINed from a separate connection; "
                "give a file path"
            )
        scheme, url = "sqlite", f"sqlite:///{url}"
    dialect = DIALECT_NAMES.get(scheme)
    if dialect is None:
        raise ConfigError(f"cannot EXPLAIN on {scheme!r} databases (sqlite, postgresql, mysql)")
    if dialect == "sqlite":
        path = url.split("://", 1)[1]
        path = path[1:] if path.startswith("/") else path
        if path in ("", ":memory:"):
            raise ConfigError(
                "an in-memory SQLite database cannot be EXPLAINed from a separate "
                "connection; give a file path"
            )

        def open_sqlite() -> Any:
            return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

        return dialect, open_sqlite
    if dialect == "postgresql":
        dsn = "postgresql://" + url.split("://", 1)[1]

        def open_postgres() -> Any:
            import psycopg

            return psycopg.connect(dsn, autocommit=False, prepare_threshold=None)

        return dialect, open_postgres
    parts = urlsplit(url)

    def open_mysql() -> Any:
        import pymysql

        return pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/") or None,
            autocommit=True,
        )

    return dialect, open_mysql


def _prepare_mysql_session(conn: Any, timeout_ms: int) -> None:
    cur = conn.cursor()
    try:
        cur.execute("SET SESSION TRANSACTION READ ONLY")
        for statement in (
            f"SET SESSION max_statement_time = {timeout_ms / 1000:.3f}",  # MariaDB, seconds
            f"SET SESSION max_execution_time = {int(timeout_ms)}",  # MySQL, milliseconds
        ):
            try:
                cur.execute(statement)
            except Exception:
                continue  # the other server's variable
    finally:
        cur.close()


# -- the explainer -----------------------------------------------------------------------------


class Explainer:
    """Plans SELECTs on a separate connection and turns full scans into index advice.

    ``connect`` opens a new DB-API connection (use :meth:`from_url` for a URL). Keyword options:
    ``min_table_rows`` (pghero's 500), ``sample_rate`` (share of observed shapes queued),
    ``max_pending`` (queue bound), ``max_cached`` (shapes remembered), ``timeout_ms`` (per
    EXPLAIN, on PostgreSQL and MySQL). Thread-safe: one lock guards the connection.

    >>> explainer = Explainer.from_url("postgresql://app@db/shop")
    >>> explainer.explain("SELECT * FROM book WHERE author_id = %s")
    (IndexAdvice(table='book', columns=('author_id',), rows=120000,
                 create_index='CREATE INDEX ix_book_author_id ON book (author_id);', ...),)
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        dialect: str,
        min_table_rows: int = 500,
        sample_rate: float = 1.0,
        max_pending: int = 64,
        max_cached: int = 2048,
        timeout_ms: int = 2000,
        rng: Callable[[], float] = random.random,
    ) -> None:
        resolved = DIALECT_NAMES.get(dialect.lower())
        if resolved is None:
            raise ConfigError(f"unknown dialect {dialect!r}; expected sqlite, postgresql or mysql")
        if not 0.0 <= sample_rate <= 1.0:
            raise ConfigError(f"sample_rate must be between 0 and 1, got {sample_rate!r}")
        self.dialect: Dialect = resolved
        self._impl = _DIALECTS[resolved]()
        self._connect = connect
        self._conn: Any = None
        self.min_table_rows = min_table_rows
        self.sample_rate = sample_rate
        self.timeout_ms = timeout_ms
        self._rng = rng
        self._lock = threading.Lock()
        self._cache: collections.OrderedDict[str, tuple[IndexAdvice, ...]] = (
            collections.OrderedDict()
        )
        self._max_cached = max_cached
        self._queued: set[str] = set()
        self._pending: queue.Queue[str | None] = queue.Queue(maxsize=max_pending)
        self._thread: threading.Thread | None = None
        #: Counters: ``explained`` (statements sent to the database), ``refused`` (not a
        #: SELECT), ``errors``, ``dropped`` (queue full), ``sampled_out``.
        self.stats: collections.Counter[str] = collections.Counter()
        #: Last error per fingerprint (a statement the database could not plan).
        self.errors: dict[str, str] = {}
        #: The runtime listener: one bound method object, so remove_listener finds it.
        self.observe: Callable[[Trace], None] = self._observe

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Explainer:
        dialect, connect = connector_for_url(url)
        return cls(connect, dialect=dialect, **options)

    @classmethod
    def from_urls(cls, urls: Iterable[str], **options: Any) -> Explainer | None:
        """An explainer for the first of ``urls`` that can be EXPLAINed from a separate
        connection (in-memory SQLite and unknown schemes are skipped), or ``None``."""
        for url in urls:
            try:
                return cls.from_url(url, **options)
            except ConfigError:
                continue
        return None

    # -- reading the cache (pure; what detectors call) ----------------------------------------

    def cached(self, sql: str) -> tuple[IndexAdvice, ...] | None:
        """The advice for ``sql``'s shape if it was planned, else ``None``. No I/O."""
        return self._cache.get(fingerprint(sql))

    def accepts(self, db_system: str | None) -> bool:
        """Whether a span of this ``db.system`` (None: unknown) is for this explainer's database."""
        if not db_system:
            return True
        return DIALECT_NAMES.get(str(db_system).lower()) == self.dialect

    # -- planning (I/O; never on a request's path) --------------------------------------------

    def explain(self, sql: str) -> tuple[IndexAdvice, ...]:
        """Plan ``sql`` (once per shape) and return the index advice. A non-SELECT is refused
        without touching the database; a statement the database cannot plan gives ``()``."""
        key = fingerprint(sql)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if not is_select(sql) or re.search(r"\bEXPLAIN\b|\bANALY[SZ]E\b", sql, re.I):
            self.stats["refused"] += 1
            return ()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
            try:
                advice = self._advise(sql)
            except Exception as exc:
                self.stats["errors"] += 1
                self.errors[key] = f"{type(exc).__name__}: {exc}"[:300]
                self._reset_connection()
                advice = ()
            self._cache[key] = advice
            if len(self._cache) > self._max_cached:
                # The oldest shape goes, with its error: both stay within max_cached.
                oldest, _ = self._cache.popitem(last=False)
                self.errors.pop(oldest, None)
            return advice

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
            if self.dialect == "mysql":
                _prepare_mysql_session(self._conn, self.timeout_ms)
        return self._conn

    def _reset_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                return

    def _advise(self, sql: str) -> tuple[IndexAdvice, ...]:
        conn = self._connection()
        impl = self._impl
        self.stats["explained"] += 1
        try:
            scans = impl.scans(conn, sql, self.timeout_ms)
            out: list[IndexAdvice] = []
            for scan in scans:
                advice = self._advice_for(conn, scan)
                if advice is not None and advice not in out:
                    out.append(advice)
            return tuple(out)
        finally:
            impl.finish(conn)

    def _advice_for(self, conn: Any, scan: _Scan) -> IndexAdvice | None:
        impl = self._impl
        columns = {c.lower(): c for c in impl.columns(conn, scan.table)}
        if not columns:
            return None
        names = {scan.alias.lower(), scan.table.lower()}
        wanted = [
            f
            for f in filter_columns(scan.condition)
            if f.column.lower() in columns and (f.qualifier is None or f.qualifier.lower() in names)
        ]
        if not wanted:
            return None
        indexed = impl.indexed(conn, scan.table)
        if any(f.column.lower() in indexed for f in wanted):
            return None  # an index exists; the planner preferred the scan (small or unselective)
        ordered = [f for f in wanted if f.equality] + [f for f in wanted if not f.equality]
        cols = tuple(dict.fromkeys(columns[f.column.lower()] for f in ordered))[:3]
        rows = impl.estimate(conn, scan.table)
        capped = False
        if rows < self.min_table_rows:
            # No (or a stale) estimate: count, but stop early; the cap bounds the work.
            cap = max(self.min_table_rows, 1) * COUNT_CAP_FACTOR
            rows = impl.bounded_count(conn, scan.table, cap)
            if rows < self.min_table_rows:
                return None
            capped = rows >= cap
        col_list = ", ".join(impl.quote(c) for c in cols)
        statement = (
            f"CREATE INDEX {_index_name(scan.table, cols)} ON {impl.quote(scan.table)} "
            f"({col_list});"
        )
        return IndexAdvice(scan.table, cols, rows, statement, scan.plan, self.dialect, capped)

    # -- queueing (what the runtime listener does) ---------------------------------------------

    def submit(self, sql: str) -> bool:
        """Queue ``sql`` for planning: sampled, each shape once, dropped when the queue is
        full. Cheap and non-blocking, so a runtime listener may call it."""
        if not is_select(sql):
            return False
        key = fingerprint(sql)
        if key in self._cache or key in self._queued:
            return False
        if self.sample_rate < 1.0 and self._rng() >= self.sample_rate:
            self.stats["sampled_out"] += 1
            return False
        try:
            self._pending.put_nowait(sql)
        except queue.Full:
            self.stats["dropped"] += 1
            return False
        self._queued.add(key)
        return True

    def _observe(self, trace: Trace) -> None:
        """Runtime listener: queue the trace's missing-index candidates (see
        :func:`lagless.detectors.missing_index.candidates`)."""
        from lagless.detectors._base import Context, DetectorSettings
        from lagless.detectors.missing_index import candidates

        ctx = Context("production", DetectorSettings(min_table_rows=self.min_table_rows), self)
        for sql in candidates(trace, ctx):
            self.submit(sql)

    def run_pending(self, limit: int | None = None) -> int:
        """Plan queued statements now (in the calling thread); returns how many."""
        done = 0
        while limit is None or done < limit:
            try:
                sql = self._pending.get_nowait()
            except queue.Empty:
                break
            if sql is None:
                break
            self._plan_queued(sql)
            done += 1
        return done

    def _plan_queued(self, sql: str) -> None:
        try:
            self.explain(sql)
        except Exception as exc:  # explain() handles DB errors; this is a lagless bug
            report_internal_error("explain", exc)
        finally:
            self._queued.discard(fingerprint(sql))

    def start(self) -> None:
        """Plan queued statements in a daemon thread (what production monitoring uses)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._worker, name="lagless-explain", daemon=True)
        self._thread.start()

    def _worker(self) -> None:
        while True:
            sql = self._pending.get()
            if sql is None:
                return
            self._plan_queued(sql)

    def attach(self, runtime: Any = None) -> None:
        """Listen to every finished trace of ``runtime`` (default: the process's) and plan
        candidates in the background."""
        if runtime is None:
            from lagless._runtime import get_runtime

            runtime = get_runtime()
        runtime.add_listener(self.observe)
        self.start()

    def close(self, runtime: Any = None) -> None:
        """Stop listening, stop the thread and close the connection."""
        if runtime is not None:
            runtime.remove_listener(self.observe)
        thread, self._thread = self._thread, None
        if thread is not None:
            self._pending.put(None)
            thread.join(timeout=5)
        with self._lock:
            self._reset_connection()

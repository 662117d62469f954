"""Over-fetching: reading more from the database than the response needs.

Four signs, per SELECT shape in a request:

- ``unbounded``: no LIMIT/FETCH/TOP, and it returned ``over_fetch_rows`` rows or more (a list
  endpoint without pagination grows with the table);
- ``unbounded-large-response``: when the driver gives no row count (sqlite3 does not for
  SELECTs), a SELECT with neither WHERE nor LIMIT behind a response of ``large_payload_bytes``
  or more -- "Potential", the evidence being circumstantial;
- ``unused``: it returned that many rows but the whole response is smaller than 4 bytes a row,
  so most rows cannot be in it (an aggregate or a filter computed in Python);
- ``select-star``: ``SELECT *`` (every column, including the ones added next year);
- ``wide``: ``wide_select_columns`` columns or more listed (an ORM loading whole wide rows).

The last two are "Potential": the response may really need every column. The cost reported is
the statement's time, an upper bound of what fetching less saves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lagless._sql import fingerprint, is_select, redact
from lagless._trace import Span, Trace
from lagless.detectors._base import Context, Finding, Severity, register
from lagless.detectors._hints import orm_advice, stack_of
from lagless.detectors.n_plus_one import NOT_SQL, short, table_of

_STAR = re.compile(r"^select\s+(?:distinct\s+)?(?:[\w\"`]+\.)?\*(?:\s|,|$)")
_BOUNDED = re.compile(r"\b(?:limit|fetch\s+first|fetch\s+next|top)\b")
_SELECT_LIST = re.compile(r"^select\s+(?:distinct\s+)?(.*?)\s*\bfrom\s", re.S)
_WHERE = re.compile(r"\bwhere\b")
_AGGREGATE = re.compile(r"^select\s+(?:count|sum|avg|min|max|exists)\s*\(")

#: Fewer response bytes than this per fetched row: the rows cannot all be in the response.
BYTES_PER_ROW = 4


def select_columns(shape: str) -> int:
    """Top-level items of the SELECT list of a fingerprint (commas inside calls skipped)."""
    match = _SELECT_LIST.search(shape)
    if not match:
        return 0
    depth, items = 0, 1
    for char in match.group(1):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            items += 1
    return items


def _over_fetching(trace: Trace, ctx: Context) -> Iterator[Finding]:
    s = ctx.settings
    shapes: dict[str, list[Span]] = {}
    for span in trace.spans:
        if (
            span.kind == "db"
            and str(span.get("db.system") or "").lower() not in NOT_SQL
            and is_select(span.name)
        ):
            shapes.setdefault(fingerprint(span.name), []).append(span)
    for shape, group in shapes.items():
        total_ms = sum(x.duration_ms for x in group)
        if not ctx.doctor and total_ms < s.over_fetch_min_ms:
            continue
        rows = max((int(x.get("rows") or 0) for x in group), default=0)
        rows_known = any(x.get("rows") is not None for x in group)
        reasons: list[str] = []
        if rows >= s.over_fetch_rows and not _BOUNDED.search(shape):
            reasons.append("unbounded")
        elif (
            not rows_known
            and trace.response_bytes >= s.large_payload_bytes
            and not _BOUNDED.search(shape)
            and not _WHERE.search(shape)
            and not _AGGREGATE.search(shape)
        ):
            # Drivers such as sqlite3 report no row count for SELECTs: a whole-table SELECT
            # behind a large response is the same problem, on circumstantial evidence.
            reasons.append("unbounded-large-response")
        if (
            rows >= s.over_fetch_rows
            and 0 < trace.response_bytes < rows * BYTES_PER_ROW
            and not _AGGREGATE.search(shape)
        ):
            reasons.append("unused")
        if _STAR.search(shape):
            reasons.append("select-star")
        elif select_columns(shape) >= s.wide_select_columns:
            reasons.append("wide")
        if not reasons:
            continue
        potential = not ({"unbounded", "unused"} & set(reasons))
        whole_table = "unbounded-large-response" in reasons
        table = table_of(shape)
        severity: Severity = "medium" if whole_table else "low"
        if not potential:
            severity = "high" if rows >= 10 * s.over_fetch_rows else "medium"
        if "unused" in reasons:
            title = f"{rows} rows read from {table} for a {trace.response_bytes}-byte response"
        elif "unbounded" in reasons:
            title = f"Unbounded list query: {rows} rows from {table} without LIMIT"
        elif whole_table:
            title = (
                f"Potential unbounded list query: all of {table} without LIMIT or WHERE, "
                f"for a {trace.response_bytes / 1000:.0f} KB response"
            )
        elif "select-star" in reasons:
            title = f"Potential over-fetching: SELECT * from {table}"
        else:
            title = f"Potential over-fetching: {select_columns(shape)} columns read from {table}"
        advice = orm_advice(
            stack_of(trace, group),
            django="read only what the response uses: .only('a', 'b') or .values('a', 'b'); "
            "paginate lists (Paginator, or a DRF pagination class) or slice the queryset "
            "([:50] adds LIMIT); compute totals in the database with aggregate()/annotate() "
            "(Count, Sum) or .exists().",
            sqlalchemy="read only what the response uses: select(Model.a, Model.b) or "
            ".options(load_only(Model.a, Model.b)); paginate with .limit()/.offset() or "
            "keyset pagination; compute totals with func.count()/func.sum() in the query.",
        )
        yield Finding(
            code="over-fetching",
            title=title,
            severity=severity,
            route=trace.route_or_path,
            method=trace.method.upper(),
            evidence=(
                {
                    "statement": short(redact(group[0].name), 500),
                    "count": len(group),
                    "total_ms": round(total_ms, 3),
                    "rows": rows,
                    "response_bytes": trace.response_bytes,
                    "reasons": reasons,
                },
            ),
            cost_ms=total_ms,
            fix=advice,
            potential=potential,
            details={"key": shape, "table": table, "reasons": tuple(reasons)},
        )


register(
    "over-fetching",
    "SELECT * / wide rows, unbounded list queries, rows the response does not use",
    per_trace=_over_fetching,
)

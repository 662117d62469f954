"""N+1: one statement shape run once per parent row, instead of once for all of them.

Three codes share the logic, one per kind of round trip:

- ``n-plus-one``: database SELECTs with one fingerprint (literals, IN-lists, whitespace and
  quoting folded by :func:`lagless._sql.fingerprint`) run with different bound parameters;
- ``n-plus-one-http``: outgoing HTTP calls to one URL pattern with different URLs;
- ``n-plus-one-cache``: cache reads of one key pattern with different keys (an MGET's work done
  in a loop).

What counts, from the issue: repeats separated by pool checkouts or other spans still count
(we group by shape across the whole request, not by adjacency), and so do repeats run in
parallel (``asyncio.gather`` of N lookups is still N round trips). What does not: repeats
without parameters (nothing shows they fetch different rows, Sentry skips them too),
identical parameters (that is a duplicate, reported by ``duplicate-query``), and redis
commands recorded as database spans (``db.system=redis``; they have their own code).

A database N+1 is certain when a SELECT of another shape ran before the repeats (the query that
returned the parent rows); without one the finding says "Potential".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, Final

from lagless._sql import fingerprint, is_select, redact
from lagless._trace import Span, Trace, union_ns
from lagless.detectors._base import Context, Finding, Severity, ms, register
from lagless.detectors._hints import orm_advice, stack_of

#: ``db.system`` values of key-value stores that some exporters record as database spans.
NOT_SQL: Final = frozenset({"redis", "memcached", "valkey", "mongodb", "elasticsearch"})

#: Cache commands that read one key: a loop of these is what MGET/pipelines are for.
CACHE_READS: Final = frozenset(
    {"GET", "HGET", "HGETALL", "GETEX", "EXISTS", "SMEMBERS", "LRANGE", "ZRANGE", "JSON.GET"}
)

_FROM = re.compile(r"\bfrom\s+([\w.\"`\[\]]+)", re.I)
_SEGMENT = re.compile(
    r"/(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,})(?=/|$)"
)


def table_of(sql: str) -> str:
    """The first table after FROM, unquoted (for titles), or ``"?"``."""
    match = _FROM.search(sql)
    return match.group(1).strip('"`[]') if match else "?"


def short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fold_url(name: str) -> str:
    """``GET https://api/users/42?x=1`` -> ``GET https://api/users/{}`` (ids folded)."""
    name = name.split("?", 1)[0]
    return _SEGMENT.sub("/{}", name)


def _groups(spans: Iterable[Span], key: Callable[[Span], str]) -> dict[str, list[Span]]:
    out: dict[str, list[Span]] = {}
    for span in spans:
        out.setdefault(key(span), []).append(span)
    return out


def _repeat_cost_ns(spans: list[Span]) -> int:
    """What batching would save: the wall time the repeats covered (parallel ones overlap)
    minus one average round trip, which the batched call still costs."""
    covered = union_ns((s.start_ns, s.end_ns) for s in spans)
    mean = sum(s.duration_ns for s in spans) // len(spans)
    return max(0, covered - mean)


def _severity(ctx: Context, repeats: int, cost_ms: float, potential: bool) -> Severity:
    if potential:
        return "medium"
    heavy = repeats >= 10 * ctx.settings.n_plus_one_min_repeats or cost_ms >= 500.0
    return "critical" if heavy else "high"


def _qualifies(ctx: Context, repeats: int, total_ms: float) -> bool:
    s = ctx.settings
    if repeats < s.n_plus_one_min_repeats:
        return False
    return ctx.doctor or total_ms >= s.n_plus_one_min_ms


def _distinct(spans: list[Span], identity: Callable[[Span], Hashable | None]) -> list[Span]:
    """The spans that carry parameters, when at least two parameter sets differ."""
    with_params = [s for s in spans if identity(s) is not None]
    if len({identity(s) for s in with_params}) < 2:
        return []
    return with_params


def _db_n_plus_one(trace: Trace, ctx: Context) -> Iterator[Finding]:
    selects = [
        s
        for s in trace.ordered_spans()
        if s.kind == "db"
        and str(s.get("db.system") or "").lower() not in NOT_SQL
        and is_select(s.name)
    ]
    for shape, group in _groups(selects, lambda s: fingerprint(s.name)).items():
        repeats = _distinct(group, lambda s: s.get("params_hash"))
        if not repeats:
            continue
        distinct = len({s.get("params_hash") for s in repeats})
        total_ms = sum(s.duration_ms for s in repeats)
        if not _qualifies(ctx, distinct, total_ms):
            continue
        first = repeats[0].start_ns
        parents = [s for s in selects if s.end_ns <= first and fingerprint(s.name) != shape]
        parent = parents[-1] if parents else None
        potential = parent is None
        cost = ms(_repeat_cost_ns(repeats))
        table = table_of(shape)
        evidence = [
            {
                "statement": short(redact(repeats[0].name), 500),
                "count": len(repeats),
                "distinct_params": distinct,
                "total_ms": round(total_ms, 3),
                "parallel": union_ns((s.start_ns, s.end_ns) for s in repeats)
                < sum(s.duration_ns for s in repeats),
            }
        ]
        if parent is not None:
            evidence.append(
                {
                    "statement": short(redact(parent.name), 500),
                    "role": "parent",
                    "count": 1,
                    "total_ms": round(parent.duration_ms, 3),
                    "rows": parent.get("rows"),
                }
            )
        stack = stack_of(trace, group)
        fix = orm_advice(
            stack,
            django="load the related rows with the parent query: select_related('<relation>') "
            "for a ForeignKey/OneToOne, prefetch_related('<relation>') for a reverse or "
            "many-to-many relation (Prefetch() to filter it).",
            sqlalchemy="load the relationship eagerly: "
            ".options(selectinload(Parent.<relation>)) for collections, "
            "joinedload(...) for many-to-one.",
        )
        fix += f" Without an ORM: one query with WHERE ... IN (...) for all {distinct} keys."
        prefix = "Potential N+1" if potential else "N+1"
        yield Finding(
            code="n-plus-one",
            title=f"{prefix} queries: {distinct} similar SELECTs on {table}",
            severity=_severity(ctx, distinct, cost, potential),
            route=trace.route_or_path,
            method=trace.method.upper(),
            evidence=tuple(evidence),
            cost_ms=cost,
            fix=fix,
            potential=potential,
            details={"key": shape, "table": table},
        )


def _http_identity(span: Span) -> Hashable | None:
    url_hash = span.get("url_hash")
    if url_hash is not None:
        return url_hash  # type: ignore[no-any-return]
    # An exporter that kept raw URLs: differing names are differing URLs.
    return span.name if fold_url(span.name) != span.name else None


def _repeated_calls(
    spans: list[Span],
    pattern_of: Callable[[Span], str],
    identity_of: Callable[[Span], Any],
    ctx: Context,
) -> Iterator[tuple[str, list[Span], list[Span], int, float, float]]:
    """The call patterns (URL shape, cache key shape) repeated with different identities
    often and long enough to report: ``(pattern, group, repeats, distinct, total_ms, cost)``.
    Shared by the HTTP and cache variants; the SQL one also needs the parent query."""
    for pattern, group in _groups(spans, pattern_of).items():
        repeats = _distinct(group, identity_of)
        if not repeats:
            continue
        distinct = len({identity_of(s) for s in repeats})
        total_ms = sum(s.duration_ms for s in repeats)
        if _qualifies(ctx, distinct, total_ms):
            yield pattern, group, repeats, distinct, total_ms, ms(_repeat_cost_ns(repeats))


def _http_n_plus_one(trace: Trace, ctx: Context) -> Iterator[Finding]:
    calls = [s for s in trace.ordered_spans() if s.kind == "http"]
    for pattern, _, repeats, distinct, total_ms, cost in _repeated_calls(
        calls, lambda s: fold_url(s.name), _http_identity, ctx
    ):
        yield Finding(
            code="n-plus-one-http",
            title=f"N+1 HTTP calls: {distinct} calls to {short(pattern, 80)}",
            severity=_severity(ctx, distinct, cost, False),
            route=trace.route_or_path,
            method=trace.method.upper(),
            evidence=(
                {
                    "call": pattern,
                    "count": len(repeats),
                    "distinct_urls": distinct,
                    "total_ms": round(total_ms, 3),
                },
            ),
            cost_ms=cost,
            fix="Fetch them in one request if the API has a batch/list endpoint (ids=1,2,3); "
            "otherwise issue them concurrently with asyncio.gather over one shared "
            "httpx.AsyncClient (a requests.Session in sync code) so they overlap and reuse "
            "connections.",
            details={"key": pattern},
        )


def _cache_n_plus_one(trace: Trace, ctx: Context) -> Iterator[Finding]:
    reads = [
        s
        for s in trace.ordered_spans()
        if s.kind == "cache" and s.name.upper() in CACHE_READS and s.get("key") is not None
    ]
    for pattern, group, repeats, distinct, total_ms, cost in _repeated_calls(
        reads, lambda s: f"{s.name.upper()} {s.get('key')}", lambda s: s.get("key_hash"), ctx
    ):
        stack = stack_of(trace)
        batch = (
            "cache.get_many(keys)"
            if stack.framework == "django"
            else "MGET (redis.mget(keys)) or a redis pipeline"
        )
        yield Finding(
            code="n-plus-one-cache",
            title=f"N+1 cache reads: {distinct} {group[0].name.upper()}s of {pattern.split()[-1]}",
            severity=_severity(ctx, distinct, cost, False),
            route=trace.route_or_path,
            method=trace.method.upper(),
            evidence=(
                {
                    "call": pattern,
                    "count": len(repeats),
                    "distinct_keys": distinct,
                    "total_ms": round(total_ms, 3),
                },
            ),
            cost_ms=cost,
            fix=f"Read the {distinct} keys in one round trip with {batch}.",
            details={"key": pattern},
        )


register(
    "n-plus-one",
    "One SELECT shape repeated with different parameters after a parent query",
    per_trace=_db_n_plus_one,
)
register(
    "n-plus-one-http",
    "One outgoing URL pattern called repeatedly with different URLs",
    per_trace=_http_n_plus_one,
)
register(
    "n-plus-one-cache",
    "One cache key pattern read key by key instead of in one MGET",
    per_trace=_cache_n_plus_one,
)

"""Duplicate queries: the identical SELECT with identical parameters run more than once in one
request, as django-debug-toolbar's SQL panel groups them (same SQL, same parameters).

The second run returns what the first did (within a request), so its whole time is waste. Only
SELECTs with a FROM clause count: writes are not idempotent, and ``SELECT 1`` is a pool's
liveness ping, not the application's query. Statements without bound parameters compare by
their raw text (literals included), with parameters by fingerprint plus ``params_hash``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator

from lagless._sql import fingerprint, is_select, redact
from lagless._trace import Span, Trace
from lagless.detectors._base import Context, Finding, register
from lagless.detectors._hints import orm_advice, stack_of
from lagless.detectors.n_plus_one import NOT_SQL, short, table_of

_HAS_FROM = re.compile(r"\bfrom\b", re.I)


def _identity(span: Span) -> Hashable:
    params = span.get("params_hash")
    if params is None:
        return (" ".join(span.name.split()), None)
    return (fingerprint(span.name), params)


def _duplicates(trace: Trace, ctx: Context) -> Iterator[Finding]:
    s = ctx.settings
    groups: dict[Hashable, list[Span]] = {}
    for span in trace.ordered_spans():
        if (
            span.kind == "db"
            and str(span.get("db.system") or "").lower() not in NOT_SQL
            and is_select(span.name)
            and _HAS_FROM.search(span.name)
        ):
            groups.setdefault(_identity(span), []).append(span)
    # Several parameter sets of one shape can each be duplicated: report the shape once.
    by_shape: dict[str, list[list[Span]]] = {}
    for group in groups.values():
        if len(group) >= s.duplicate_min_repeats:
            by_shape.setdefault(fingerprint(group[0].name), []).append(group)
    for shape, dup_groups in by_shape.items():
        group = max(dup_groups, key=len)
        count = sum(len(g) for g in dup_groups)
        total_ms = sum(x.duration_ms for g in dup_groups for x in g)
        wasted = sum(sum(x.duration_ms for x in g[1:]) for g in dup_groups)
        if not ctx.doctor and wasted < s.duplicate_min_ms:
            continue
        fix = orm_advice(
            stack_of(trace, group),
            django="evaluate the queryset once and reuse the result (assign it to a variable, "
            "or cached_property on the object); for the same related object, select_related() "
            "it once.",
            sqlalchemy="reuse the loaded object: Session.get() answers from the identity map "
            "without a query, and one query's result can be passed down instead of re-run.",
        )
        yield Finding(
            code="duplicate-query",
            title=f"Duplicate query: the same SELECT on {table_of(shape)} ran {count} times"
            if len(dup_groups) == 1
            else f"Duplicate queries: {len(dup_groups)} SELECTs on {table_of(shape)} each ran "
            "more than once",
            severity="high" if count >= 5 else "medium",
            route=trace.route_or_path,
            method=trace.method.upper(),
            evidence=(
                {
                    "statement": short(redact(group[0].name), 500),
                    "count": count,
                    "duplicated_sets": len(dup_groups),
                    "total_ms": round(total_ms, 3),
                },
            ),
            cost_ms=wasted,
            fix=fix + " A request-scoped memo (functools.cache on a per-request object) also "
            "works for values computed from the same query.",
            details={"key": shape},
        )


register(
    "duplicate-query",
    "The identical SELECT with identical parameters run more than once",
    per_trace=_duplicates,
)

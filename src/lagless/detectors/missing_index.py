"""Missing index: a SELECT that scans a whole non-trivial table to filter on a column.

The evidence comes from the database's own planner, read through an
:class:`~lagless._explain.Explainer` on a separate connection after the requests ran (never on
their hot path, never EXPLAIN ANALYZE, never a non-SELECT). This detector only *reads* the
explainer's cache, so it stays a pure function of the traces and that cache.

Which SELECTs are worth planning (:func:`candidates`): in ``doctor`` runs every SELECT shape
(the database is small and fast, so durations say nothing); in production a statement that
took ``slow_query_ms`` (Sentry's slow DB query threshold, 500 ms) or a shape run
``n_plus_one_min_repeats`` times in one request. The advice needs a table of at least
``min_table_rows`` rows (pghero's 500) and no index starting with the filtered column.
"""

from __future__ import annotations

from collections.abc import Iterator

from lagless._sql import fingerprint, is_select, redact
from lagless._trace import Span, Trace
from lagless.detectors._base import Context, Finding, Severity, register
from lagless.detectors._hints import orm_advice, stack_of
from lagless.detectors.n_plus_one import NOT_SQL, short


def _selects(trace: Trace, ctx: Context) -> dict[str, list[Span]]:
    explainer = ctx.explainer
    shapes: dict[str, list[Span]] = {}
    for span in trace.spans:
        if span.kind != "db" or not is_select(span.name):
            continue
        system = span.get("db.system")
        if str(system or "").lower() in NOT_SQL:
            continue
        if explainer is not None and not explainer.accepts(system):
            continue
        shapes.setdefault(fingerprint(span.name), []).append(span)
    return shapes


def candidates(trace: Trace, ctx: Context) -> Iterator[str]:
    """The statements of ``trace`` worth an EXPLAIN (one per shape)."""
    s = ctx.settings
    for group in _selects(trace, ctx).values():
        if (
            ctx.doctor
            or len(group) >= s.n_plus_one_min_repeats
            or any(x.duration_ms >= s.slow_query_ms for x in group)
        ):
            yield group[0].name


def explain_candidates(traces: list[Trace], ctx: Context) -> int:
    """Plan the candidates of ``traces`` (cached per shape, at most ``max_explain`` new ones).
    Called by :func:`lagless.detect` before the detectors run; does I/O."""
    explainer = ctx.explainer
    if explainer is None:
        return 0
    planned = 0
    seen: set[str] = set()
    for trace in traces:
        for sql in candidates(trace, ctx):
            key = fingerprint(sql)
            if key in seen or explainer.cached(sql) is not None:
                continue
            seen.add(key)
            if planned >= ctx.settings.max_explain:
                return planned
            explainer.explain(sql)
            planned += 1
    return planned


def _missing_index(trace: Trace, ctx: Context) -> Iterator[Finding]:
    explainer = ctx.explainer
    if explainer is None:
        return
    s = ctx.settings
    wanted = set(candidates(trace, ctx))
    for shape, group in _selects(trace, ctx).items():
        if group[0].name not in wanted:
            continue
        advice_list = explainer.cached(group[0].name) or ()
        total_ms = sum(x.duration_ms for x in group)
        for advice in advice_list:
            if advice.rows < s.min_table_rows:
                continue
            severity: Severity = "medium"
            if (ctx.doctor and advice.rows >= 20 * s.min_table_rows) or (
                not ctx.doctor and total_ms >= s.slow_query_ms
            ):
                severity = "high"
            cols = ", ".join(advice.columns)
            size = f"{advice.rows}+" if advice.rows_at_least else str(advice.rows)
            fix = f"Add the index: {advice.create_index}"
            if advice.dialect == "postgresql":
                fix += " (CREATE INDEX CONCURRENTLY on a busy table avoids blocking writes)."
            fix += " In the model: " + orm_advice(
                stack_of(trace, group),
                django=f"Meta.indexes = [models.Index(fields={list(advice.columns)!r})] "
                "(or db_index=True on the field), then makemigrations.",
                sqlalchemy=f"Index('{advice.create_index.split()[2]}', "
                f"{', '.join(repr(c) for c in advice.columns)}) in __table_args__ (or "
                "index=True on the column), then an Alembic migration.",
            )
            yield Finding(
                code="missing-index",
                title=f"Missing index: full scan of {advice.table} ({size} rows) "
                f"filtered on {cols}",
                severity=severity,
                route=trace.route_or_path,
                method=trace.method.upper(),
                evidence=(
                    {
                        "statement": short(redact(group[0].name), 500),
                        "count": len(group),
                        "total_ms": round(total_ms, 3),
                        "table": advice.table,
                        "rows": advice.rows,
                        "plan": advice.plan,
                        "create_index": advice.create_index,
                    },
                ),
                cost_ms=total_ms,
                fix=fix,
                details={"key": (shape, advice.table, advice.columns)},
            )


register(
    "missing-index",
    "A SELECT scanning a whole non-trivial table to filter on an unindexed column (EXPLAIN)",
    per_trace=_missing_index,
)

"""Sequential independent I/O in async handlers: reads awaited one after another that could
have overlapped with ``asyncio.gather``.

A run is two or more I/O spans (database SELECTs, GET/HEAD HTTP calls, cache reads) of an
async handler (``attrs["async_handler"]``, or, when the integration could not tell, any handler
of an ASGI framework), each starting after the previous one ended. Overlapping spans are already
concurrent and end a run; so do writes and transaction statements, which must stay ordered.
Shapes repeated ``n_plus_one_min_repeats`` times are left to the N+1 detectors.

A trace cannot show whether the second call needed the first one's result, so every finding
is "Potential"; Sentry's consecutive-queries detector faces the same limit and likewise only
reports runs whose parallelisation would save >= 100 ms and >= 10 % of the run. The saving is
what gathering the run would gain: its total time minus its longest call. Doctor runs (tiny
durations) need three calls in a row instead: "fetch the parent, then its children" is two
dependent calls and the commonest sequence there is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from lagless._sql import fingerprint, is_select, redact
from lagless._trace import Span, Trace
from lagless.detectors._base import Context, Finding, Severity, ms, register
from lagless.detectors.n_plus_one import CACHE_READS, fold_url, short

_SAFE_HTTP: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def call_label(span: Span) -> str:
    if span.kind == "db":
        return short(redact(span.name), 300)
    if span.kind == "http":
        return fold_url(span.name)
    key = span.get("key")
    return f"{span.name} {key}" if key is not None else span.name


def _shape(span: Span) -> str:
    return f"{span.kind}:{fingerprint(span.name) if span.kind == 'db' else call_label(span)}"


def _parallelisable(span: Span) -> bool | None:
    """True for an independent-looking read; False for a call that must stay ordered (ends a
    run); None for spans that are neither (skipped)."""
    if span.get("on_loop"):
        return None  # a sync call: blocking-call's business, and gather would not help
    if span.kind == "db":
        return is_select(span.name)
    if span.kind == "http":
        return span.name.split(" ", 1)[0].upper() in _SAFE_HTTP
    if span.kind == "cache":
        return span.name.upper() in CACHE_READS
    return None


def _runs(trace: Trace, ctx: Context) -> list[list[Span]]:
    spans = [s for s in trace.ordered_spans() if s.kind in ("db", "http", "cache")]
    counts: dict[str, int] = {}
    for span in spans:
        counts[_shape(span)] = counts.get(_shape(span), 0) + 1
    runs: list[list[Span]] = []
    current: list[Span] = []
    for span in spans:
        kind = _parallelisable(span)
        if kind is None:
            continue
        repeated = counts[_shape(span)] >= ctx.settings.n_plus_one_min_repeats
        if not kind or repeated or (current and span.start_ns < current[-1].end_ns):
            runs.append(current)
            current = [] if (not kind or repeated) else [span]
            continue
        current.append(span)
    runs.append(current)
    least = ctx.settings.sequential_min_calls
    if ctx.doctor:
        least = max(least, ctx.settings.sequential_doctor_min_calls)
    return [run for run in runs if len(run) >= least]


#: Frameworks whose handlers are normally ``async def``.
ASYNC_FRAMEWORKS: Final = frozenset({"fastapi", "starlette", "litestar", "asgi"})


def is_async(trace: Trace) -> bool:
    """``attrs["async_handler"]`` when the integration knew; else whether the framework is an
    ASGI one (its handlers are async by default)."""
    known = trace.attrs.get("async_handler")
    if known is not None:
        return bool(known)
    return str(trace.attrs.get("framework") or "").lower() in ASYNC_FRAMEWORKS


def _sequential(trace: Trace, ctx: Context) -> Iterator[Finding]:
    if not is_async(trace):
        return
    s = ctx.settings
    for run in _runs(trace, ctx):
        durations = [x.duration_ns for x in run]
        saving = ms(sum(durations) - max(durations))
        ratio = saving / ms(sum(durations)) if sum(durations) else 0.0
        if not ctx.doctor and (saving < s.sequential_min_saving_ms or ratio < 0.1):
            continue
        severity: Severity = "low"
        if saving >= 5 * s.sequential_min_saving_ms:
            severity = "high"
        elif saving >= s.sequential_min_saving_ms:
            severity = "medium"
        evidence = tuple(
            {
                "call": call_label(x),
                "kind": x.kind,
                "count": 1,
                "total_ms": round(x.duration_ms, 3),
                "start_ms": round(trace.offset_ms(x), 3),
            }
            for x in run
        )
        yield Finding(
            code="sequential-io",
            title=f"Potential sequential I/O: {len(run)} independent-looking calls awaited "
            "one after another",
            severity=severity,
            route=trace.route_or_path,
            method=trace.method.upper(),
            evidence=evidence,
            cost_ms=saving,
            fix="If these calls do not use each other's results, start them together: "
            "results = await asyncio.gather(a(), b()) (or an asyncio.TaskGroup). Database "
            "queries need one connection each to overlap: a separate AsyncSession per "
            "task (SQLAlchemy) or pool.acquire() per task (asyncpg); one connection runs one "
            "query at a time.",
            potential=True,
            details={"key": tuple(_shape(x) for x in run)},
        )


register(
    "sequential-io",
    "Consecutive independent reads in an async handler that could run concurrently",
    per_trace=_sequential,
)

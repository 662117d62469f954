"""Slow middleware: a middleware layer whose own time is a large share of the request.

Middleware spans carry *self* time (the layer's time minus the layers and handler inside it),
so a share here is what that layer adds to every request it wraps. The layer's time in the
route's *median* request decides (one slow first request, a cold cache or a lazy import, is not
the layer's habit). A finding needs
``middleware_share`` (a fifth) of the request and an absolute floor: ``middleware_min_ms``
(10 ms) in production, 1 ms in doctor runs, where a 0.3 ms layer can be a large share of a
1 ms request and still not matter.
"""

from __future__ import annotations

from collections.abc import Iterator

from lagless._trace import Trace
from lagless.detectors._base import Context, Finding, median_sample, register

_FIX = {
    "django": "Take it out of settings.MIDDLEWARE if the project does not need it, or make it "
    "cheap: return early for paths it does not concern, cache what it looks up per request "
    "(sessions: SESSION_ENGINE = 'django.contrib.sessions.backends.cached_db').",
    "flask": "Make the before_request/after_request hook cheap: return early for endpoints it "
    "does not concern and cache what it looks up (flask-caching).",
    "starlette": "Starlette's BaseHTTPMiddleware adds ~100 us per layer: rewrite it as a pure "
    "ASGI middleware (a class with __call__(scope, receive, send)); return early for paths it "
    "does not concern and cache what it looks up.",
}


def _fix(framework: str) -> str:
    if framework == "fastapi":
        framework = "starlette"
    base = _FIX.get(framework, _FIX["starlette"] + " In Django, prune settings.MIDDLEWARE.")
    return base + " `lagless profile` (pyinstrument) shows where inside it the time goes."


def _slow_middleware(traces: list[Trace], ctx: Context) -> Iterator[Finding]:
    s = ctx.settings
    # Per middleware: (trace, own ms, share) for each request it ran in.
    samples: dict[str, list[tuple[Trace, float, float, int]]] = {}
    for trace in traces:
        if trace.duration_ns <= 0:
            continue
        own: dict[str, list[float]] = {}
        for span in trace.spans:
            if span.kind == "middleware":
                own.setdefault(span.name, []).append(span.duration_ms)
        for name, times in own.items():
            total = sum(times)
            samples.setdefault(name, []).append(
                (trace, total, total / trace.duration_ms, len(times))
            )
    floor = s.middleware_doctor_min_ms if ctx.doctor else s.middleware_min_ms
    for name, runs in samples.items():
        trace, total, share, calls = median_sample(runs, key=lambda r: r[1])
        if share < s.middleware_share or total < floor:
            continue
        yield Finding(
            code="slow-middleware",
            title=f"Slow middleware: {name} takes {total:.1f} ms ({share:.0%} of the request)",
            severity="high" if share >= 0.5 else "medium",
            route=trace.route_or_path,
            method=trace.method.upper(),
            evidence=(
                {
                    "call": name,
                    "count": calls,
                    "total_ms": round(total, 3),
                    "share": round(share, 3),
                    "median_of": len(runs),
                },
            ),
            cost_ms=total,
            fix=_fix(str(trace.attrs.get("framework") or "")),
            requests=len(runs),
            details={"key": name},
        )


register(
    "slow-middleware",
    "A middleware whose own time is a large share of the request",
    per_route=_slow_middleware,
)

"""Assert on latency in your own tests: how many queries a request ran, no N+1, no finding.

With pytest, ask for the ``lagless_traces`` fixture (lagless's pytest plugin provides it); any
framework's test client works, as long as the app is instrumented (``lagless.instrument(app)``
or Django's ``lagless.django.LaglessMiddleware``)::

    def test_book_list(client, lagless_traces):
        client.get("/api/books")
        lagless_traces.assert_max_queries(3)
        lagless_traces.assert_no_n_plus_one()
        lagless_traces.assert_no_findings(severity="medium")

Elsewhere (unittest, a script), :func:`capture_traces` is the same object as a context manager::

    with capture_traces() as captured:
        client.get("/api/books")
    assert len(captured.queries(route="/api/books")) <= 3

Findings are computed with the ``doctor`` thresholds (counts, not milliseconds: durations in a
test database say little), so an N+1 of five queries fails a test even when it took 2 ms.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lagless._runtime import Runtime, get_runtime
from lagless._trace import Span, Trace

if TYPE_CHECKING:
    from lagless.detectors import DetectorSettings, Finding

__all__ = ["N_PLUS_ONE_CODES", "TraceCapture", "capture_traces", "format_findings"]

#: The finding codes :meth:`TraceCapture.assert_no_n_plus_one` rejects.
N_PLUS_ONE_CODES = frozenset({"n-plus-one", "n-plus-one-http", "n-plus-one-cache"})


class TraceCapture:
    """The traces of the requests finished while it is started (a runtime listener).

    ``body_digest`` is switched on while capturing, so detectors can tell identical responses
    apart (the HTTP-caching finding needs it); the previous settings come back on :meth:`stop`.
    """

    def __init__(
        self,
        *,
        runtime: Runtime | None = None,
        settings: DetectorSettings | None = None,
        digest_bodies: bool = True,
    ) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._traces: list[Trace] = []
        self._saved: Any = None
        self._digest = digest_bodies
        self.settings = settings

    # -- lifecycle -------------------------------------------------------------------------

    def _listener(self, trace: Trace) -> None:
        with self._lock:
            self._traces.append(trace)

    def start(self) -> TraceCapture:
        rt = self._runtime = self._runtime or get_runtime()
        if self._digest and not rt.config.body_digest:
            self._saved = rt.config
            rt.configure(body_digest=True)
        rt.add_listener(self._listener)
        return self

    def stop(self) -> None:
        rt = self._runtime
        if rt is None:
            return
        rt.remove_listener(self._listener)
        if self._saved is not None:
            rt.configure(config=self._saved)
            self._saved = None

    def __enter__(self) -> TraceCapture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear(self) -> None:
        """Forget the traces so far (set-up requests you do not want to assert on)."""
        with self._lock:
            self._traces.clear()

    # -- reading ---------------------------------------------------------------------------

    @property
    def traces(self) -> list[Trace]:
        """The captured traces, in the order the requests finished."""
        with self._lock:
            return list(self._traces)

    def requests(self, route: str | None = None, *, method: str | None = None) -> list[Trace]:
        """Traces of ``route`` (a template like ``/books/{id}``, or the path that was
        requested) and ``method``; all of them by default."""
        out = []
        for t in self.traces:
            if route is not None and route not in (t.route, t.path):
                continue
            if method is not None and t.method.upper() != method.upper():
                continue
            out.append(t)
        return out

    def queries(self, route: str | None = None, *, method: str | None = None) -> list[Span]:
        """The database spans (``span.name`` is the statement) of the matching requests."""
        return [s for t in self.requests(route, method=method) for s in t.spans if s.kind == "db"]

    def findings(
        self,
        *,
        severity: str = "info",
        codes: Iterable[str] | None = None,
        settings: DetectorSettings | None = None,
    ) -> list[Finding]:
        """Findings at or above ``severity`` (optionally only ``codes``), worst first."""
        from lagless.detectors import analyze, severity_at_least

        wanted = frozenset(codes) if codes is not None else None
        found = analyze(self.traces, mode="doctor", settings=settings or self.settings)
        return [
            f
            for f in found
            if severity_at_least(f.severity, severity) and (wanted is None or f.code in wanted)
        ]

    # -- assertions ------------------------------------------------------------------------

    def assert_no_findings(
        self, severity: str = "medium", *, codes: Iterable[str] | None = None
    ) -> None:
        """Fail if any finding is ``severity`` or worse, listing each with its fix."""
        found = self.findings(severity=severity, codes=codes)
        if found:
            raise AssertionError(
                f"lagless found {len(found)} latency problem(s) at or above {severity}:\n"
                + format_findings(found)
            )

    def assert_no_n_plus_one(self) -> None:
        """Fail on any N+1 (queries, outgoing HTTP calls or cache reads), whatever its cost."""
        self.assert_no_findings("info", codes=N_PLUS_ONE_CODES)

    def assert_max_queries(
        self, n: int, route: str | None = None, *, method: str | None = None
    ) -> None:
        """Fail if any matching request ran more than ``n`` database queries, listing them."""
        reqs = self.requests(route, method=method)
        if not reqs:
            where = f" for {route}" if route else ""
            raise AssertionError(
                f"no request was captured{where}: is the app instrumented "
                "(lagless.instrument(app) or lagless.django.LaglessMiddleware)?"
            )
        for t in reqs:
            db = [s for s in t.ordered_spans() if s.kind == "db"]
            if len(db) > n:
                listing = "\n".join(
                    f"  {i}. {' '.join(s.name.split())[:160]}" for i, s in enumerate(db, 1)
                )
                raise AssertionError(
                    f"{t.method} {t.path} ran {len(db)} queries (at most {n} allowed):\n{listing}"
                )


def format_findings(findings: Iterable[Finding], *, evidence: int = 3) -> str:
    """Findings as indented text: severity, code, route, title, top evidence, fix."""
    lines = []
    for f in findings:
        lines.append(f"- [{f.severity}] {f.code} {f.method} {f.route}: {f.title}")
        for item in f.evidence[:evidence]:
            what = item.get("statement") or item.get("call") or ""
            count = item.get("count")
            text = " ".join(str(what).split())[:140]
            lines.append(f"    {count}x {text}" if count is not None else f"    {text}")
        lines.append(f"    fix: {f.fix}")
    return "\n".join(lines)


@contextmanager
def capture_traces(**options: Any) -> Iterator[TraceCapture]:
    """Capture the traces of requests finished inside the block (see :class:`TraceCapture`)."""
    capture = TraceCapture(**options)
    capture.start()
    try:
        yield capture
    finally:
        capture.stop()

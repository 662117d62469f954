"""Hand-built traces for the monitor's tests: no clock is read, every time is given."""

from __future__ import annotations

from typing import Any

from lagless._trace import Trace

MS = 1_000_000  # ns


def make_trace(
    route: str | None = "/items/{id}",
    *,
    method: str = "GET",
    path: str | None = None,
    duration_ms: float = 10.0,
    status: int = 200,
    spans: list[tuple[str, str, float, float, dict[str, Any] | None]] = (),  # type: ignore[assignment]
    start_ns: int = 1_000 * MS,
    start_time: float = 1_700_000_000.0,
    headers: dict[str, str] | None = None,
) -> Trace:
    """A finished trace; ``spans`` are ``(kind, name, offset_ms, duration_ms, attrs)``."""
    trace = Trace(
        method,
        path or (route or "/nowhere").replace("{id}", "7"),
        route=route,
        start_ns=start_ns,
        start_time=start_time,
        request_headers=headers,
    )
    for kind, name, offset, dur, attrs in spans:
        begin = start_ns + int(offset * MS)
        trace.add_span(kind, name, begin, begin + int(dur * MS), attrs)
    trace.status = status
    trace.finish(start_ns + int(duration_ms * MS))
    return trace


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

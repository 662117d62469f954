"""Helpers shared by the database integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from lagless._trace import Span, Trace, _current_trace


@contextmanager
def tracing() -> Iterator[Trace]:
    """Make a fresh trace current, as the framework middleware would for a request."""
    trace = Trace()
    token = _current_trace.set(trace)
    try:
        yield trace
    finally:
        _current_trace.reset(token)


def db_spans(trace: Trace) -> list[Span]:
    return [s for s in trace.spans if s.kind == "db"]


def pool_spans(trace: Trace, name: str | None = None) -> list[Span]:
    return [s for s in trace.spans if s.kind == "pool" and (name is None or s.name == name)]


def unique_table(prefix: str = "lagless_t") -> str:
    """A table name no concurrently running test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"

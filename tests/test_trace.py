from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import lagless
from lagless._spans import error_text, record
from lagless._trace import Trace, _current_trace, union_ns


def test_union_merges_overlaps() -> None:
    assert union_ns([]) == 0
    assert union_ns([(0, 10)]) == 10
    assert union_ns([(0, 10), (5, 15), (20, 25)]) == 20
    assert union_ns([(20, 25), (0, 10), (2, 3)]) == 15


def test_span_context_manager_records_into_current_trace() -> None:
    trace = Trace("GET", "/x")
    token = _current_trace.set(trace)
    try:
        with lagless.span("work", kind="custom", note="n"):
            pass
    finally:
        _current_trace.reset(token)
    assert [(s.kind, s.name, s.attrs) for s in trace.spans] == [("custom", "work", {"note": "n"})]
    assert trace.spans[0].duration_ns >= 0


def test_span_outside_request_does_nothing() -> None:
    with lagless.span("free"):
        value = 1
    assert value == 1
    assert lagless.current_trace() is None


def test_span_records_error_and_reraises() -> None:
    trace = Trace()
    token = _current_trace.set(trace)
    try:
        with pytest.raises(KeyError), lagless.span("boom"):
            raise KeyError("k")
    finally:
        _current_trace.reset(token)
    assert trace.spans[0].attrs == {"error": "KeyError: 'k'"}


def test_error_text_never_raises_and_is_bounded() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise ValueError("broken __str__")

    assert error_text(Unprintable()) == "Unprintable: <unprintable>"
    assert error_text(KeyError()) == "KeyError"
    assert error_text(ValueError("x" * 1000)) == "ValueError: " + "x" * 297 + "..."


async def test_span_decorator_sync_and_async_and_gather() -> None:
    @lagless.span("child", kind="db")
    async def child(i: int) -> int:
        await asyncio.sleep(0)
        return i * 2

    @lagless.span
    def plain(x: int) -> int:
        return x + 1

    trace = Trace()
    token = _current_trace.set(trace)
    try:
        results = await asyncio.gather(*(child(i) for i in range(5)))
        assert plain(1) == 2
    finally:
        _current_trace.reset(token)
    assert results == [0, 2, 4, 6, 8]
    assert [s.kind for s in trace.spans].count("db") == 5
    assert trace.spans[-1].name.endswith("plain")


async def test_two_concurrent_traces_never_mix() -> None:
    async def request(name: str) -> Trace:
        trace = Trace("GET", name)
        token = _current_trace.set(trace)
        try:
            for _ in range(20):
                with lagless.span(name):
                    await asyncio.sleep(0)
        finally:
            _current_trace.reset(token)
        return trace

    a, b = await asyncio.gather(request("a"), request("b"))
    assert {s.name for s in a.spans} == {"a"} and len(a.spans) == 20
    assert {s.name for s in b.spans} == {"b"} and len(b.spans) == 20


def test_threads_have_their_own_trace() -> None:
    seen: dict[str, list[str]] = {}

    def worker(name: str) -> None:
        trace = Trace("GET", name)
        _current_trace.set(trace)
        for _ in range(50):
            with lagless.span(name):
                pass
        seen[name] = [s.name for s in trace.spans]

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, names in seen.items():
        assert names == [name] * 50


def test_record_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    from lagless import _guard

    trace = Trace()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug in lagless")

    monkeypatch.setattr(Trace, "add_span", broken)
    assert record(trace, "db", "select 1", 0) is None
    assert _guard.internal_errors == {"record:db": 1}


def test_lazy_headers_decode_bytes_and_join_repeats() -> None:
    trace = Trace(request_headers=[(b"Accept", b"a"), (b"accept", b"b"), (b"X-Y", b"z")])
    assert trace.request_headers == {"accept": "a, b", "x-y": "z"}
    trace.set_response_headers([("Cache-Control", "max-age=1")])
    assert trace.response_headers == {"cache-control": "max-age=1"}


def test_lazy_header_source_runs_only_when_read() -> None:
    """A ``(function, argument)`` source (the WSGI/Django environ) is run on first read only,
    once; a tuple of header pairs is still read as pairs."""
    from lagless.integrations.wsgi import environ_headers

    calls: list[dict[str, str]] = []

    def source(environ: dict[str, str]) -> Any:
        calls.append(environ)
        return environ_headers(environ)

    environ = {
        "HTTP_ACCEPT_LANGUAGE": "de",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "",
        "PATH_INFO": "/x",
    }
    trace = Trace(request_headers=(source, environ))
    assert calls == []
    assert trace.request_headers == {"accept-language": "de", "content-type": "text/plain"}
    assert trace.request_headers["accept-language"] == "de"
    assert calls == [environ]
    pairs = Trace(request_headers=((b"Host", b"a"), (b"X-A", b"b")))
    assert pairs.request_headers == {"host": "a", "x-a": "b"}

"""LaglessWSGIMiddleware against raw WSGI apps, driven the way PEP 3333 servers drive them."""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

import lagless
from lagless._runtime import Runtime
from lagless._trace import Trace, current_trace
from lagless.integrations import wsgi as wsgi_mod
from lagless.integrations.wsgi import LaglessWSGIMiddleware


class Server:
    """A minimal PEP 3333 server: call, iterate, always close; records what the app sent."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.exc_info: Any = None
        self.written: list[bytes] = []
        self.out: list[bytes] = []

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        self.status = status
        self.headers = headers
        self.exc_info = exc_info
        return self.write

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self.out.append(data)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def run(self, app: Any, path: str = "/", **environ: Any) -> bytes:
        env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", **environ}
        result = app(env, self.start_response)
        try:
            for chunk in result:
                self.out.append(chunk)
            return b"".join(self.out)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def list_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["lagless.route"] = "/items/{id}"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello ", b"world"]


def only(rt: Runtime) -> Trace:
    traces = rt.recent_traces()
    assert len(traces) == 1, traces
    return traces[0]


def test_list_body_is_returned_as_is_and_traced(fresh_runtime: Runtime) -> None:
    server = Server()
    app = LaglessWSGIMiddleware(list_app)
    body = server.run(app, "/items/7", HTTP_X_REQUEST_ID="abc", QUERY_STRING="q=1")
    assert body == b"hello world"
    trace = only(fresh_runtime)
    assert (trace.method, trace.path, trace.route, trace.status) == (
        "GET",
        "/items/7",
        "/items/{id}",
        200,
    )
    assert trace.response_bytes == 11
    assert trace.query_string == "q=1"
    assert trace.request_headers["x-request-id"] == "abc"
    assert trace.attrs["framework"] == "wsgi"
    assert trace.duration_ns > 0
    timing = server.header("Server-Timing")
    assert timing is not None and "total;dur=" in timing
    assert trace.response_headers["server-timing"] == timing
    assert current_trace() is None


def test_wrapped_twice_records_one_trace_with_one_header(fresh_runtime: Runtime) -> None:
    """Regression: a second LaglessWSGIMiddleware (``Lagless(app)`` plus a hand-made wrapper)
    started its own trace, so each request left two traces and two Server-Timing headers."""
    server = Server()
    server.run(LaglessWSGIMiddleware(LaglessWSGIMiddleware(list_app)), "/items/7")
    trace = only(fresh_runtime)
    assert (trace.route, trace.status, trace.response_bytes) == ("/items/{id}", 200, 11)
    assert [k for k, _ in server.headers].count("Server-Timing") == 1


@pytest.mark.parametrize(("status", "recorded"), [("200", 200), ("201 Created", 201), ("x", 0)])
def test_odd_status_lines_and_a_bare_environ(
    fresh_runtime: Runtime, status: str, recorded: int
) -> None:
    """Bad input is the app's or server's to reject: lagless records what it can, passes the
    status on unchanged and reports no internal error of its own."""
    from lagless._guard import internal_errors

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [])
        return [b"ok"]

    seen: list[str] = []

    def start_response(status_line: str, headers: list[tuple[str, str]]) -> Any:
        seen.append(status_line)
        assert [k for k, _ in headers] == ["Server-Timing"]
        return lambda data: None

    assert LaglessWSGIMiddleware(app)({}, start_response) == [b"ok"]
    assert seen == [status]
    trace = only(fresh_runtime)
    assert (trace.method, trace.path, trace.status) == ("GET", "/", recorded)
    assert trace.request_headers == {}
    assert internal_errors == {}


def test_generator_app_runs_with_its_trace_current_and_finishes_on_close(
    fresh_runtime: Runtime,
) -> None:
    seen: list[Trace | None] = []
    closed: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        try:
            start_response("200 OK", [])
            for i in range(3):
                with lagless.span(f"chunk-{i}"):
                    seen.append(current_trace())
                yield b"x" * (i + 1)
        finally:
            closed.append(True)

    server = Server()
    wrapped = LaglessWSGIMiddleware(app)
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/gen"}
    result = wrapped(env, server.start_response)
    assert fresh_runtime.recent_traces() == []  # nothing has run yet
    it = iter(result)
    assert next(it) == b"x"
    assert current_trace() is None  # current only while the app's code runs
    assert fresh_runtime.recent_traces() == []  # still streaming
    result.close()  # type: ignore[attr-defined]
    assert closed == [True]
    trace = only(fresh_runtime)
    assert seen == [trace]
    assert [s.name for s in trace.spans] == ["chunk-0"]
    assert trace.status == 200 and trace.response_bytes == 1
    # Consumed to the end instead, every chunk's span is in the trace.
    fresh_runtime.clear()
    body = Server().run(LaglessWSGIMiddleware(app))
    assert body == b"xxxxxx"
    trace = only(fresh_runtime)
    assert [s.name for s in trace.spans] == ["chunk-0", "chunk-1", "chunk-2"]
    assert trace.response_bytes == 6
    # ``next()`` straight on the body (no ``iter()`` first) reads the same chunks.
    fresh_runtime.clear()
    direct = wrapped(dict(env), Server().start_response)
    chunks = [next(direct), next(direct), next(direct)]  # type: ignore[call-overload]
    with pytest.raises(StopIteration):
        next(direct)  # type: ignore[call-overload]
    assert chunks == [b"x", b"xx", b"xxx"]
    assert only(fresh_runtime).response_bytes == 6


def test_inner_close_is_called_once_and_trace_finished_once(fresh_runtime: Runtime) -> None:
    calls: list[str] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"a"

        def close(self) -> None:
            calls.append("close")

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("204 No Content", [])
        return Body()

    finished: list[Trace] = []
    fresh_runtime.add_listener(finished.append)
    Server().run(LaglessWSGIMiddleware(app))
    assert calls == ["close"]
    assert len(finished) == 1 and finished[0].status == 204


def test_exception_in_app_call_propagates_and_is_traced(fresh_runtime: Runtime) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise KeyError("nope")

    with pytest.raises(KeyError, match="nope"):
        Server().run(LaglessWSGIMiddleware(app))
    trace = only(fresh_runtime)
    assert trace.status == 500
    assert trace.attrs["error"] == "KeyError: 'nope'"
    assert current_trace() is None


@pytest.mark.parametrize("body_digest", [False, True])
def test_exception_while_streaming_propagates_and_finishes_trace(
    fresh_runtime: Runtime, body_digest: bool
) -> None:
    fresh_runtime.configure(body_digest=body_digest)
    closed: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            yield b"first"
            raise ValueError("broken stream")
        finally:
            closed.append(True)

    with pytest.raises(ValueError, match="broken stream"):
        Server().run(LaglessWSGIMiddleware(app))
    trace = only(fresh_runtime)
    assert trace.attrs["error"] == "ValueError: broken stream"
    assert trace.status == 200  # what the client was sent before the body broke
    assert trace.response_bytes == 5
    assert closed == [True]
    assert ("body_digest" in trace.attrs) is body_digest
    assert current_trace() is None


def test_body_digest_hashes_every_chunk_including_write(fresh_runtime: Runtime) -> None:
    fresh_runtime.configure(body_digest=True)

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        write = start_response("200 OK", [])
        write(b"head-")
        yield b"body"

    server = Server()
    assert server.run(LaglessWSGIMiddleware(app)) == b"head-body"
    trace = only(fresh_runtime)
    assert trace.attrs["body_digest"] == hashlib.blake2b(b"head-body", digest_size=16).hexdigest()
    # A list body is digested too.
    fresh_runtime.clear()
    Server().run(LaglessWSGIMiddleware(list_app))
    expected = hashlib.blake2b(b"hello world", digest_size=16).hexdigest()
    assert only(fresh_runtime).attrs["body_digest"] == expected


def test_write_callable_still_works_and_counts(fresh_runtime: Runtime) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"returned"]

    server = Server()
    assert server.run(LaglessWSGIMiddleware(app)) == b"written returned"
    assert server.written == [b"written "]
    assert only(fresh_runtime).response_bytes == len(b"written returned")


def test_exc_info_is_passed_through_to_the_server(fresh_runtime: Runtime) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        try:
            raise RuntimeError("late failure")
        except RuntimeError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"error page"]

    server = Server()
    server.run(LaglessWSGIMiddleware(app))
    assert server.status == "500 Internal Server Error"
    assert server.exc_info is not None and isinstance(server.exc_info[1], RuntimeError)
    assert only(fresh_runtime).status == 500


def test_server_timing_and_tracing_can_be_switched_off(fresh_runtime: Runtime) -> None:
    fresh_runtime.configure(server_timing=False)
    server = Server()
    server.run(LaglessWSGIMiddleware(list_app))
    assert server.header("Server-Timing") is None
    assert only(fresh_runtime).status == 200
    fresh_runtime.clear()
    fresh_runtime.configure(enabled=False)
    env_seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        env_seen.append(environ)
        return list_app(environ, start_response)

    assert Server().run(LaglessWSGIMiddleware(app)) == b"hello world"
    assert fresh_runtime.recent_traces() == []
    assert "lagless.trace" not in env_seen[0]


def test_internal_error_is_logged_and_response_unchanged(
    fresh_runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(trace: Trace, now_ns: int) -> str:
        raise RuntimeError("bug in lagless")

    monkeypatch.setattr(wsgi_mod, "server_timing", broken)
    server = Server()
    with caplog.at_level(logging.ERROR, logger="lagless"):
        body = server.run(LaglessWSGIMiddleware(list_app))
    assert body == b"hello world"
    assert server.status == "200 OK"
    assert server.headers == [("Content-Type", "text/plain")]
    assert "internal error in wsgi:start-response" in caplog.text
    assert only(fresh_runtime).status == 200


def test_route_resolver_and_environ_trace(fresh_runtime: Runtime) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        assert environ["lagless.trace"] is current_trace()
        start_response("200 OK", [])
        return []

    wrapped = LaglessWSGIMiddleware(
        app, route_resolver=lambda env: "/custom/{x}", framework="bottle"
    )
    Server().run(wrapped, "/custom/1")
    trace = only(fresh_runtime)
    assert trace.route == "/custom/{x}"
    assert trace.attrs["framework"] == "bottle"


def test_two_concurrent_requests_never_mix_spans(fresh_runtime: Runtime) -> None:
    barrier = threading.Barrier(2, timeout=10)

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        name = environ["PATH_INFO"]
        with lagless.span(f"{name}-call"):
            barrier.wait()  # both requests are inside the app at once
        start_response("200 OK", [])
        barrier.wait()
        with lagless.span(f"{name}-stream"):
            yield name.encode()

    wrapped = LaglessWSGIMiddleware(app)
    errors: list[BaseException] = []

    def serve(path: str) -> None:
        try:
            Server().run(wrapped, path)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=serve, args=(p,)) for p in ("/a", "/b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    traces = fresh_runtime.recent_traces()
    assert sorted(t.path for t in traces) == ["/a", "/b"]
    for trace in traces:
        assert [s.name for s in trace.spans] == [f"{trace.path}-call", f"{trace.path}-stream"]


def test_failure_to_start_a_trace_serves_the_request_untraced(
    fresh_runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Trace:
        raise RuntimeError("bug in lagless")

    monkeypatch.setattr(wsgi_mod, "Trace", broken)
    server = Server()
    with caplog.at_level(logging.ERROR, logger="lagless"):
        assert server.run(LaglessWSGIMiddleware(list_app)) == b"hello world"
    assert server.headers == [("Content-Type", "text/plain")]
    assert "internal error in wsgi:begin" in caplog.text
    assert fresh_runtime.recent_traces() == []


def test_server_file_wrapper_is_returned_unwrapped(fresh_runtime: Runtime) -> None:
    class FileWrapper:
        """What a server puts in ``wsgi.file_wrapper`` and recognises to use sendfile()."""

        def __init__(self, data: bytes) -> None:
            self.data = data

        def __iter__(self) -> Iterator[bytes]:
            yield self.data

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", "4")])
        return environ["wsgi.file_wrapper"](b"file")

    result = LaglessWSGIMiddleware(app)(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/f", "wsgi.file_wrapper": FileWrapper},
        Server().start_response,
    )
    assert type(result) is FileWrapper
    assert only(fresh_runtime).status == 200

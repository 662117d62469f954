"""Compression middleware for ASGI and WSGI apps; the rules live in :mod:`._compression`.

The ASGI one is a plain class wrapping ``send`` (the shape of Starlette's ``GZipMiddleware``,
never ``BaseHTTPMiddleware``): it holds ``http.response.start`` until the first body message
shows whether the body is complete (compress it in one call, with an exact ``Content-Length``)
or streaming (compress chunk by chunk, flushing each chunk so a streamed event reaches the
client when the app sends it, not when a compressor block fills).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from time import perf_counter_ns as _now
from typing import Any

from lagless._spans import record
from lagless._trace import _current_trace
from lagless.payload._compression import (
    DEFAULT_CODINGS,
    DEFAULT_LEVELS,
    DEFAULT_MINIMUM_SIZE,
    Compressor,
    available_codings,
    compress,
    compressor,
    decide,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: WSGI bodies with a ``Content-Length`` up to this size are gathered and compressed in one
#: call; larger or unsized ones are compressed chunk by chunk.
BUFFER_LIMIT = 4 * 1024 * 1024


class _Options:
    """Validated options shared by the ASGI, WSGI and Django middlewares."""

    __slots__ = ("codings", "levels", "minimum_size")

    def __init__(
        self,
        minimum_size: int,
        codings: Iterable[str],
        levels: Mapping[str, int] | None,
    ) -> None:
        if minimum_size < 0:
            raise ValueError("minimum_size must be >= 0")
        self.minimum_size = minimum_size
        self.codings = available_codings(codings)
        self.levels = dict(DEFAULT_LEVELS)
        for coding, level in (levels or {}).items():
            if coding not in DEFAULT_LEVELS:
                raise ValueError(f"unknown content coding {coding!r}; expected gzip, br or zstd")
            self.levels[coding] = level

    def one_shot(self, body: bytes, coding: str) -> bytes:
        trace = _current_trace.get()
        if trace is None:
            return compress(body, coding, self.levels[coding])
        start = _now()
        out = compress(body, coding, self.levels[coding])
        record(
            trace, "middleware", f"compress:{coding}", start, bytes=len(out), input_bytes=len(body)
        )
        return out

    def stream(self, coding: str) -> Compressor:
        return compressor(coding, self.levels[coding])


def _request_header(scope: Scope, name: bytes) -> str | None:
    values = [v for k, v in scope.get("headers", ()) if k.lower() == name]
    if not values:
        return None
    return b", ".join(values).decode("latin-1")


class CompressionMiddleware:
    """Compress responses of any ASGI app (FastAPI, Starlette, Litestar...) with zstd, brotli
    or gzip, as the client's ``Accept-Encoding`` prefers::

        app.add_middleware(CompressionMiddleware)           # FastAPI / Starlette
        app = CompressionMiddleware(app, minimum_size=1000)  # any ASGI app

    Replaces Starlette's ``GZipMiddleware`` (gzip 9 only) at a fraction of its CPU for about
    the same ratio: see docs/payload.md for the measurements behind the default levels.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        minimum_size: int = DEFAULT_MINIMUM_SIZE,
        codings: Iterable[str] = DEFAULT_CODINGS,
        levels: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.options = _Options(minimum_size, codings, levels)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "HEAD":
            await self.app(scope, receive, send)
            return
        responder = _ASGIResponder(
            send,
            self.options,
            scope.get("method", "GET"),
            _request_header(scope, b"accept-encoding"),
        )
        await self.app(scope, receive, responder.send)


class _ASGIResponder:
    __slots__ = ("_accept", "_comp", "_method", "_opts", "_send", "_start", "_state")

    def __init__(self, send: Send, opts: _Options, method: str, accept: str | None) -> None:
        self._send = send
        self._opts = opts
        self._method = method
        self._accept = accept
        self._start: Message | None = None
        self._comp: Compressor | None = None
        self._state = 0  # 0: before start, 1: start held, 2: passing through, 3: compressing

    async def send(self, message: Message) -> None:
        state = self._state
        if state == 2:
            await self._send(message)
            return
        mtype = message["type"]
        if state == 0:
            if mtype == "http.response.start":
                self._start = message
                self._state = 1
                return
            await self._send(message)
            return
        if state == 3:
            if mtype != "http.response.body":
                await self._send(message)
                return
            comp = self._comp
            assert comp is not None
            more = message.get("more_body", False)
            data = comp.compress(message.get("body", b""))
            data += comp.flush() if more else comp.finish()
            await self._send({"type": mtype, "body": data, "more_body": more})
            return
        # state 1: start held, first message after it decides.
        start = self._start
        assert start is not None
        if mtype != "http.response.body":
            # pathsend, trailers or an extension: nothing we can compress.
            self._state = 2
            await self._send(start)
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        raw = start.get("headers", [])
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
        decision = decide(
            method=self._method,
            status=start["status"],
            headers=pairs,
            accept_encoding=self._accept,
            body_length=None if more else len(body),
            codings=self._opts.codings,
            minimum_size=self._opts.minimum_size,
        )
        headers = decision.headers
        coding = decision.coding
        if coding is None:
            self._state = 2
            if headers is not None:
                start = {**start, "headers": _encode(headers)}
            await self._send(start)
            await self._send(message)
            return
        assert headers is not None
        if not more:
            self._state = 2
            out = self._opts.one_shot(body, coding)
            headers.append(("content-length", str(len(out))))
            await self._send({**start, "headers": _encode(headers)})
            await self._send({"type": mtype, "body": out, "more_body": False})
            return
        self._state = 3
        comp = self._comp = self._opts.stream(coding)
        await self._send({**start, "headers": _encode(headers)})
        await self._send(
            {"type": mtype, "body": comp.compress(body) + comp.flush(), "more_body": True}
        )


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class WSGICompressionMiddleware:
    """Compress responses of any WSGI app (Flask, Django's WSGI handler, Falcon...)::

        app.wsgi_app = WSGICompressionMiddleware(app.wsgi_app)      # Flask

    A list body, or one with a ``Content-Length`` up to 4 MiB (an ordinary Flask or Django
    response), is compressed in one call with an exact ``Content-Length``; any other iterable
    is streamed, each chunk flushed as the app yields it.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        minimum_size: int = DEFAULT_MINIMUM_SIZE,
        codings: Iterable[str] = DEFAULT_CODINGS,
        levels: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.options = _Options(minimum_size, codings, levels)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "HEAD":
            return self.app(environ, start_response)
        return _WSGIBody(self, environ, start_response)


class _WSGIBody:
    """The iterable handed to the server; ``start_response`` is called on first iteration,
    once the app's headers (and, for list bodies, its length) are known (PEP 3333 allows it)."""

    def __init__(self, mw: WSGICompressionMiddleware, environ: Environ, sr: StartResponse) -> None:
        self._opts = mw.options
        self._method = environ.get("REQUEST_METHOD", "GET")
        self._accept = environ.get("HTTP_ACCEPT_ENCODING")
        self._sr = sr
        self._status = ""
        self._headers: list[tuple[str, str]] = []
        self._exc_info: Any = None
        self._written: list[bytes] = []
        self._inner = mw.app(environ, self._capture)

    def _capture(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self._status, self._headers, self._exc_info = status, list(headers), exc_info
        # The legacy write() callable: buffered and sent ahead of the iterable's chunks.
        return self._written.append

    def __iter__(self) -> Iterator[bytes]:
        inner = self._inner
        if isinstance(inner, list | tuple) and self._status:
            chunks: list[bytes] = [*self._written, *inner]
            yield from self._finish_whole(b"".join(chunks))
            return
        it = iter(inner)
        first = b""
        for chunk in it:  # first non-empty chunk, which also makes generators start_response
            if chunk:
                first = chunk
                break
        else:
            yield from self._finish_whole(b"".join([*self._written, first]))
            return
        first = b"".join([*self._written, first])
        if self._declared_length() is not None:
            # Werkzeug and Django hand over a closing iterator even for a body in memory; with
            # a known, modest Content-Length it is cheaper to compress it in one call.
            yield from self._finish_whole(b"".join([first, *it]))
            return
        coding, _ = self._start(None)
        if coding is None:
            yield first
            yield from it
            return
        comp = self._opts.stream(coding)
        yield comp.compress(first) + comp.flush()
        for chunk in it:
            if chunk:
                yield comp.compress(chunk) + comp.flush()
        yield comp.finish()

    def _declared_length(self) -> int | None:
        for name, value in self._headers:
            if name.lower() == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    return None
                return length if length <= BUFFER_LIMIT else None
        return None

    def _finish_whole(self, body: bytes) -> Iterator[bytes]:
        _, out = self._start(len(body), body)
        yield out

    def _start(self, length: int | None, body: bytes = b"") -> tuple[str | None, bytes]:
        """Call the server's ``start_response`` with the decided headers; return the coding
        and, for a whole ``body``, the bytes to send."""
        status_code = int(self._status.split(" ", 1)[0] or 0)
        decision = decide(
            method=self._method,
            status=status_code,
            headers=self._headers,
            accept_encoding=self._accept,
            body_length=length,
            codings=self._opts.codings,
            minimum_size=self._opts.minimum_size,
        )
        headers = self._headers if decision.headers is None else decision.headers
        coding = decision.coding
        if coding is not None and length is not None:
            body = self._opts.one_shot(body, coding)
            headers.append(("content-length", str(len(body))))
        self._sr(self._status, [(_title(k), v) for k, v in headers], self._exc_info)
        return coding, body

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def _title(name: str) -> str:
    # WSGI servers accept any case; keep the conventional one for readable logs.
    return "-".join(part.capitalize() for part in name.split("-"))

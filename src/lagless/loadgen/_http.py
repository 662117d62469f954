"""The load generator's HTTP/1.1 client: asyncio protocols over raw sockets, keep-alive pool.

Why hand-written: this is the generator's hot path, and a load generator that cannot outrun
the server measures itself. Measured on this machine (2 shared cores, CPython 3.11, a raw
asyncio server on 127.0.0.1; ``python bench/loadgen.py --client-compare``), per CPU-second of
the generator's thread: ``httpx.AsyncClient`` about 1,900 requests on one connection and about
420 with 32 concurrent (its pool degrades with concurrency); this client about 55,000 on one
connection and 104,000 with 32. aiohttp is not installed here, and a client that must be
installed to benchmark would be a heavy dependency for the core. What it does is small:
write a pre-encoded request, parse a status line, three headers (``Content-Length``,
``Transfer-Encoding``, ``Connection``) and the body framing of RFC 9112 §6.3, and hand the
result to a callback: no task or coroutine per request.

Requests are completed by callback (``done(status, nbytes, headers, body, error, sent_at)``)
so that the open-loop scheduler never waits on a response; ``sent_at`` is the moment the
request was written, which lets the caller tell its own lateness from a pool that ran out of
connections.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from lagless.errors import LaglessError

#: ``done(status, nbytes, headers, body, error, sent_at)``; headers and body are ``None``
#: unless the request asked to keep them (for captures), error is ``None`` on success.
Done = Callable[[int, int, "dict[str, str] | None", "bytes | None", "str | None", float], None]

_clock = time.perf_counter


def encode_request(
    method: str,
    target: str,
    host: str,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes | None = None,
) -> bytes:
    """The bytes of one HTTP/1.1 request (RFC 9112 §3): request line, Host (RFC 9112 §3.2,
    required), the caller's headers, Content-Length when there is a body."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    names = set()
    for name, value in headers:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise LaglessError(f"header {name!r} contains a line break")
        names.add(name.lower())
        lines.append(f"{name}: {value}")
    if "user-agent" not in names:
        lines.append("User-Agent: lagless-bench")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


class _Pending:
    __slots__ = ("body", "done", "head", "keep", "payload", "retried")

    def __init__(self, payload: bytes, head: bool, keep: bool, done: Done) -> None:
        self.payload = payload
        self.head = head
        self.keep = keep
        self.done = done
        self.retried = False


# Parser states.
_IDLE, _HEAD, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(5)


class _Conn(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight (no pipelining)."""

    def __init__(self, pool: HttpPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.state = _IDLE
        self.req: _Pending | None = None
        self.sent_at = 0.0
        self.deadline = 0.0
        self.status = 0
        self.need = 0  # body bytes expected (Content-Length)
        self.body_start = 0
        self.pos = 0  # chunked: where parsing resumes
        self.nbody = 0  # chunked: body bytes so far
        self.body: bytearray | None = None  # chunked: the body, when kept
        self.close_after = False
        self.headers: dict[str, str] | None = None
        self.used = 0  # requests completed on this connection

    # -- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        req = self.req
        if req is not None:
            self.req = None
            if self.state == _UNTIL_CLOSE:
                self._finish(req, len(self.buf) - self.body_start)
            elif self.state == _HEAD and not self.buf and self.used and not req.retried:
                # RFC 9112 §9.3.1: a reused connection the server closed before answering;
                # the request may be retried once on a new one (idempotent or not yet read).
                req.retried = True
                self.pool._resubmit(req)
            else:
                req.done(0, 0, None, None, "connection closed by server", self.sent_at)
        self.pool._lost(self)

    def data_received(self, data: bytes) -> None:
        if self.req is None:
            return  # an unsolicited response (e.g. a 408 before close): ignore
        self.buf += data
        self._parse()

    def eof_received(self) -> bool | None:
        return None

    # -- requests ------------------------------------------------------------------------------

    def send(self, req: _Pending) -> None:
        self.req = req
        self.state = _HEAD
        self.buf.clear()
        self.headers = None
        self.close_after = False
        now = _clock()
        self.sent_at = now
        self.deadline = now + self.pool.timeout
        assert self.transport is not None
        self.transport.write(req.payload)

    def _parse(self) -> None:
        buf = self.buf
        req = self.req
        assert req is not None
        if self.state == _HEAD:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    self._fail("response head larger than 64 KiB")
                return
            try:
                self._read_head(bytes(buf[:end]), req)
            except ValueError as exc:
                self._fail(f"malformed response: {exc}")
                return
            self.body_start = self.pos = end + 4
            self.nbody = 0
            self.body = bytearray() if req.keep and self.state == _CHUNKED else None
        if self.state == _LENGTH:
            have = len(buf) - self.body_start
            if have >= self.need:
                self._finish(req, self.need)
        elif self.state == _CHUNKED:
            self._parse_chunks(req)
        elif self.state == _IDLE:
            self._finish(req, 0)

    def _read_head(self, head: bytes, req: _Pending) -> None:
        # RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
        if not head.startswith(b"HTTP/1."):
            raise ValueError("not an HTTP/1.x status line")
        status = int(head[9:12])
        self.status = status
        length = -1
        chunked = False
        keep = req.keep
        headers: dict[str, str] | None = {} if keep else None
        # RFC 9112 §9.3: HTTP/1.0 closes after the response unless it says keep-alive.
        http10_keep = head[5:8] != b"1.0"
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            first = name[:1]
            if headers is not None:
                headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
            if first in b"cC":
                lname = name.strip().lower()
                if lname == b"content-length":
                    length = int(value)
                elif lname == b"connection":
                    token = value.strip().lower()
                    if b"close" in token:
                        self.close_after = True
                    elif token == b"keep-alive":
                        http10_keep = True
            elif first in b"tT" and name.strip().lower() == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if not http10_keep:
            self.close_after = True
        self.headers = headers
        # RFC 9112 §6.3: HEAD, 1xx, 204 and 304 have no body; chunked wins over a length.
        if req.head or status < 200 or status in (204, 304):
            self.state = _IDLE
        elif chunked:
            self.state = _CHUNKED
        elif length >= 0:
            self.state = _LENGTH
            self.need = length
        else:
            self.state = _UNTIL_CLOSE
            self.close_after = True

    def _parse_chunks(self, req: _Pending) -> None:
        # RFC 9112 §7.1: chunk = size [ext] CRLF data CRLF ... last-chunk [trailers] CRLF.
        buf = self.buf
        pos = self.pos
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                break
            try:
                size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
            except ValueError:
                self._fail("bad chunk size")
                return
            if size == 0:
                if buf.find(b"\r\n\r\n", line_end) < 0:
                    break  # trailers not complete yet
                self._finish(req, self.nbody)
                return
            if len(buf) < line_end + 4 + size:
                break
            if self.body is not None:
                self.body += buf[line_end + 2 : line_end + 2 + size]
            self.nbody += size
            pos = line_end + 4 + size
        self.pos = pos

    def _finish(self, req: _Pending, nbytes: int) -> None:
        self.req = None
        self.state = _IDLE
        self.used += 1
        body: bytes | None = None
        if req.keep:
            if self.body is not None:
                body = bytes(self.body)
            else:
                body = bytes(self.buf[self.body_start : self.body_start + nbytes])
        self.body = None
        status, headers, sent = self.status, self.headers, self.sent_at
        self.buf.clear()
        if self.close_after and self.transport is not None:
            self.transport.close()
            self.transport = None
            self.pool._lost(self)
        else:
            self.pool._free(self)
        req.done(status, nbytes, headers, body, None, sent)

    def _fail(self, error: str) -> None:
        req = self.req
        self.req = None
        if self.transport is not None:
            self.transport.abort()
            self.transport = None
        self.pool._lost(self)
        if req is not None:
            req.done(0, 0, None, None, error, self.sent_at)


class HttpPool:
    """Keep-alive connections to one origin, opened on demand up to ``max_connections``.

    ``submit`` never blocks: the request goes out on an idle connection (the most recently
    used first, so the fewest stay warm), on a new one, or waits in a queue for the next free
    one. Idle connections are never closed by the pool; the server's keep-alive timeout may,
    and a request that meets such a close is retried once.
    """

    def __init__(self, base_url: str, *, max_connections: int = 1000, timeout: float = 30.0):
        try:
            parts = urlsplit(base_url)
            port = parts.port
        except ValueError as exc:  # "http://[::1", "http://h:99999"
            raise LaglessError(f"bad URL {base_url!r}: {exc}") from None
        if parts.scheme != "http":
            raise LaglessError(
                f"lagless bench speaks plain HTTP/1.1 to a base URL (http://host:port), got "
                f"{base_url!r}; put TLS termination in front of it or use an in-process target"
            )
        if not parts.hostname:
            raise LaglessError(f"no host in {base_url!r}")
        self.host = parts.hostname
        self.port = port or 80
        self.host_header = parts.netloc
        self.prefix = parts.path.rstrip("/")
        self.max_connections = max(1, max_connections)
        self.timeout = timeout
        self.idle: list[_Conn] = []
        self.busy: set[_Conn] = set()
        self.opening = 0
        self.waiting: collections.deque[_Pending] = collections.deque()
        self.connect_errors = 0
        self.queued = 0  # requests that had to wait for a free connection
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    def encode(
        self,
        method: str,
        url: str,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes | None = None,
    ) -> bytes:
        return encode_request(method, self.prefix + url, self.host_header, headers, body)

    def submit(self, payload: bytes, *, head: bool, keep: bool, done: Done) -> None:
        """Send ``payload`` (from :meth:`encode`) as soon as a connection is free."""
        req = _Pending(payload, head, keep, done)
        if self.idle:
            conn = self.idle.pop()
            if conn.transport is not None:
                self.busy.add(conn)
                conn.send(req)
                return
            self._lost(conn)
        self.waiting.append(req)
        if self.opening + len(self.busy) < self.max_connections:
            self._open()
        else:
            self.queued += 1

    def _resubmit(self, req: _Pending) -> None:
        self.waiting.appendleft(req)
        if self.opening + len(self.busy) < self.max_connections:
            self._open()

    def _open(self) -> None:
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        if self._sweeper is None:
            self._sweeper = loop.call_later(0.1, self._sweep)
        self.opening += 1
        task = loop.create_task(loop.create_connection(lambda: _Conn(self), self.host, self.port))
        task.add_done_callback(self._opened)

    def _opened(self, task: asyncio.Task[tuple[Any, _Conn]]) -> None:
        self.opening -= 1
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.connect_errors += 1
            # The oldest waiting request carries the error; others wait for later connects.
            if self.waiting:
                req = self.waiting.popleft()
                req.done(0, 0, None, None, f"connect: {type(exc).__name__}: {exc}", _clock())
            if self.waiting and not self._closed and self.opening + len(self.busy) == 0:
                self._open()
            return
        _transport, conn = task.result()
        if self._closed:
            if conn.transport is not None:
                conn.transport.close()
            return
        self._free(conn)

    def _free(self, conn: _Conn) -> None:
        if self.waiting and conn.transport is not None:
            self.busy.add(conn)
            conn.send(self.waiting.popleft())
            return
        self.busy.discard(conn)
        if conn.transport is not None:
            self.idle.append(conn)

    def _lost(self, conn: _Conn) -> None:
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if (
            self.waiting
            and not self._closed
            and self.opening + len(self.busy) < self.max_connections
        ):
            self._open()

    def _sweep(self) -> None:
        """Time out requests in flight longer than ``timeout`` (a periodic sweep, cheaper
        than a timer per request)."""
        now = _clock()
        for conn in [c for c in self.busy if c.req is not None and c.deadline < now]:
            req = conn.req
            conn.req = None
            if conn.transport is not None:
                conn.transport.abort()
                conn.transport = None
            self.busy.discard(conn)
            if req is not None:
                req.done(0, 0, None, None, "timeout", conn.sent_at)
        if not self._closed and self._loop is not None:
            self._sweeper = self._loop.call_later(0.1, self._sweep)

    @property
    def in_flight(self) -> int:
        return len(self.busy) + len(self.waiting)

    def close(self) -> None:
        """Abort everything: requests still waiting or in flight are reported as not done."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in [*self.idle, *self.busy]:
            req = conn.req
            conn.req = None
            if conn.transport is not None:
                conn.transport.abort()
                conn.transport = None
            if req is not None:
                req.done(0, 0, None, None, "unfinished at end of run", conn.sent_at)
        self.idle.clear()
        self.busy.clear()
        while self.waiting:
            self.waiting.popleft().done(0, 0, None, None, "never sent", _clock())

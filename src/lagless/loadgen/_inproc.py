"""Server-free targets: an ASGI or WSGI app called in this process, with the same interface
as :class:`~lagless.loadgen._http.HttpPool` (``encode``, ``submit`` with a completion
callback, ``close``).

An ASGI app is called directly (one task per request, the app's lifespan run first, as
:mod:`lagless.doctor._client` does); a WSGI app runs in a pool of ``max_connections`` threads,
standing in for a threaded server's workers. No socket is involved, so these runs measure the
app and its framework, not the network stack or a server: good for comparing two versions of
an app, not for quoting absolute latencies. The generator shares its CPU with the app here, so
the CPU-pinned saturation rule does not apply; late dispatches still invalidate a run.
"""

from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

from lagless.loadgen._http import Done

_clock = time.perf_counter


class _Request:
    __slots__ = ("body", "headers", "method", "path", "query")

    def __init__(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body


def _split(url: str) -> tuple[str, str]:
    path, _, query = url.partition("?")
    return path, query


class AsgiTransport:
    """Calls an ASGI 3 application for each request, at most ``max_connections`` at once."""

    host_header = "testserver"

    def __init__(self, app: Any, *, max_connections: int = 1000, timeout: float = 30.0) -> None:
        from lagless.doctor._client import _Lifespan

        self._lifespan = _Lifespan(app)
        self.timeout = timeout
        self.max_connections = max(1, max_connections)
        self.running = 0
        self.waiting: collections.deque[tuple[_Request, bool, bool, Done]] = collections.deque()
        self.queued = 0
        self.connect_errors = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        await self._lifespan.startup()

    async def stop(self) -> None:
        await self._lifespan.shutdown()

    def encode(
        self,
        method: str,
        url: str,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes | None = None,
    ) -> _Request:
        path, query = _split(url)
        return _Request(method, path, query, list(headers), body or b"")

    @property
    def in_flight(self) -> int:
        return self.running + len(self.waiting)

    def submit(self, payload: _Request, *, head: bool, keep: bool, done: Done) -> None:
        if self.running >= self.max_connections:
            self.queued += 1
            self.waiting.append((payload, head, keep, done))
            return
        self._start(payload, head, keep, done)

    def _start(self, req: _Request, head: bool, keep: bool, done: Done) -> None:
        self.running += 1
        task = asyncio.get_running_loop().create_task(self._call(req, keep, done))
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.running -= 1
        if self.waiting and not self._closed:
            self._start(*self.waiting.popleft())

    async def _call(self, req: _Request, keep: bool, done: Done) -> None:
        sent = _clock()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": req.method,
            "scheme": "http",
            "path": unquote(req.path),
            "raw_path": req.path.encode("latin-1"),
            "query_string": req.query.encode("latin-1"),
            "root_path": "",
            "headers": [(b"host", b"testserver")]
            + [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in req.headers],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        body_sent = False
        complete = False
        status = 0
        nbytes = 0
        headers: dict[str, str] | None = {} if keep else None
        chunks: list[bytes] = []
        finished = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": req.body, "more_body": False}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, nbytes, complete
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
                if headers is not None:
                    for k, v in message.get("headers", ()):
                        headers[k.decode("latin-1").lower()] = v.decode("latin-1")
            elif kind == "http.response.body":
                chunk = message.get("body", b"")
                nbytes += len(chunk)
                if keep:
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    complete = True
                    finished.set()

        error: str | None = None
        try:
            await asyncio.wait_for(self._lifespan(scope, receive, send), self.timeout)
        except TimeoutError:
            error = "timeout"
        except Exception as exc:
            # An exception after the whole response was sent (a background task, a logging
            # hook) does not undo the response; one before it is the request's outcome.
            if not complete:
                error = f"app raised {type(exc).__name__}: {exc}"
        finally:
            finished.set()
        if error is None and not complete:
            error = "app sent no response" if status == 0 else "app sent an incomplete response"
        done(status, nbytes, headers, b"".join(chunks) if keep else None, error, sent)

    def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        while self.waiting:
            self.waiting.popleft()[3](0, 0, None, None, "never sent", _clock())


class WsgiTransport:
    """Calls a WSGI application in ``max_connections`` worker threads."""

    host_header = "testserver"

    def __init__(self, app: Any, *, max_connections: int = 16, timeout: float = 30.0) -> None:
        self.app = app
        self.timeout = timeout
        self.max_connections = max(1, max_connections)
        self._pool = ThreadPoolExecutor(self.max_connections, thread_name_prefix="lagless-wsgi")
        self._loop: asyncio.AbstractEventLoop | None = None
        self.running = 0
        self.queued = 0
        self.connect_errors = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    encode = AsgiTransport.encode

    @property
    def in_flight(self) -> int:
        return self.running

    def submit(self, payload: _Request, *, head: bool, keep: bool, done: Done) -> None:
        loop = self._loop or asyncio.get_running_loop()
        self.running += 1
        if self.running > self.max_connections:
            self.queued += 1
        future = self._pool.submit(self._call, payload, keep)

        def finished(
            fut: Future[tuple[int, int, dict[str, str] | None, bytes | None, str | None, float]],
        ) -> None:
            def deliver() -> None:
                self.running -= 1
                if fut.cancelled():
                    done(0, 0, None, None, "never sent", _clock())
                    return
                done(*fut.result())

            if not loop.is_closed():
                loop.call_soon_threadsafe(deliver)

        future.add_done_callback(finished)

    def _call(
        self, req: _Request, keep: bool
    ) -> tuple[int, int, dict[str, str] | None, bytes | None, str | None, float]:
        import io
        import sys

        sent = _clock()
        environ: dict[str, Any] = {
            "REQUEST_METHOD": req.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(req.path),
            "QUERY_STRING": req.query,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(req.body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(req.body)) if req.body else "",
            "HTTP_HOST": "testserver",
        }
        for name, value in req.headers:
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = value
            else:
                environ["HTTP_" + key] = value
        status = 0
        headers: dict[str, str] | None = {} if keep else None

        def start_response(line: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal status
            status = int(line.split(" ", 1)[0])
            if headers is not None:
                headers.update((k.lower(), v) for k, v in hdrs)
            return lambda data: None

        nbytes = 0
        chunks: list[bytes] = []
        try:
            result = self.app(environ, start_response)
            try:
                for chunk in result:
                    nbytes += len(chunk)
                    if keep:
                        chunks.append(chunk)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception as exc:
            return 0, 0, None, None, f"app raised {type(exc).__name__}: {exc}", sent
        return status, nbytes, headers, b"".join(chunks) if keep else None, None, sent

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

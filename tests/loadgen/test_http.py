"""The hand-written HTTP/1.1 client against a raw asyncio server with canned responses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from lagless.errors import LaglessError
from lagless.loadgen._http import HttpPool, encode_request

Responder = Callable[[bytes, int], bytes | None]


class CannedServer:
    """Answers each request with ``respond(request_bytes, n)``; ``None`` means no answer;
    a response ending in ``b"<close>"`` closes the connection after it."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                out = self.respond(head + body, len(self.requests))
                if out is None:
                    await asyncio.sleep(10)
                    return
                close = out.endswith(b"<close>")
                writer.write(out.removesuffix(b"<close>"))
                await writer.drain()
                if close:
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


@pytest.fixture
async def canned() -> AsyncIterator[Callable[[Responder], Any]]:
    servers: list[CannedServer] = []

    async def start(respond: Responder) -> tuple[CannedServer, str]:
        s = CannedServer(respond)
        servers.append(s)
        return s, await s.start()

    yield start
    for s in servers:
        assert s.server is not None
        s.server.close()


async def fetch(pool: HttpPool, method: str = "GET", path: str = "/", body: bytes | None = None):
    fut: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
    pool.submit(
        pool.encode(method, path, (), body),
        head=method == "HEAD",
        keep=True,
        done=lambda *a: fut.set_result(a),
    )
    return await fut


def ok(body: bytes = b"hello", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def test_content_length_and_keep_alive(canned) -> None:
    server, url = await canned(lambda req, n: ok(b"x" * n, b'ETag: "v1"\r\n'))
    pool = HttpPool(url)
    for n in (1, 2, 3):
        status, nbytes, headers, body, error, sent_at = await fetch(pool)
        assert (status, nbytes, body, error) == (200, n, b"x" * n, None)
        assert headers["etag"] == '"v1"'
        assert sent_at > 0
    assert server.connections == 1  # one connection, reused
    first = server.requests[0]
    assert first.startswith(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:")
    pool.close()


async def test_chunked_body_with_trailers(canned) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    server, url = await canned(lambda req, n: chunked)
    pool = HttpPool(url)
    for _ in range(2):
        status, nbytes, _h, body, error, _ = await fetch(pool)
        assert (status, nbytes, body, error) == (200, 11, b"hello world", None)
    assert server.connections == 1
    pool.close()


async def test_body_until_close_and_http10(canned) -> None:
    _server, url = await canned(lambda req, n: b"HTTP/1.0 200 OK\r\n\r\nuntil close<close>")
    pool = HttpPool(url)
    for _ in range(2):
        status, nbytes, _h, body, error, _ = await fetch(pool)
        assert (status, nbytes, body, error) == (200, 11, b"until close", None)
    pool.close()


async def test_head_204_and_304_have_no_body(canned) -> None:
    def respond(req: bytes, n: int) -> bytes:
        if req.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        if n == 2:
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        return b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"

    server, url = await canned(respond)
    pool = HttpPool(url)
    assert (await fetch(pool, "HEAD"))[:2] == (200, 0)
    assert (await fetch(pool))[:2] == (204, 0)
    assert (await fetch(pool))[:2] == (304, 0)
    assert server.connections == 1
    pool.close()


async def test_request_body_is_sent_with_its_length(canned) -> None:
    server, url = await canned(lambda req, n: ok())
    pool = HttpPool(url + "/prefix")
    await fetch(pool, "POST", "/orders", b'{"a": 1}')
    assert b"POST /prefix/orders HTTP/1.1" in server.requests[0]
    assert b"Content-Length: 8" in server.requests[0]
    assert server.requests[0].endswith(b'{"a": 1}')
    pool.close()


async def test_a_reused_connection_closed_by_the_server_is_retried(canned) -> None:
    # The server answers, then closes the connection (as a keep-alive timeout would) without
    # saying so; the next request meets the closed socket and is sent again on a new one.
    server, url = await canned(lambda req, n: ok() + b"<close>")
    pool = HttpPool(url)
    assert (await fetch(pool))[0] == 200
    await asyncio.sleep(0.05)
    status, *_rest, error, _sent = await fetch(pool)
    assert (status, error) == (200, None)
    assert server.connections == 2
    pool.close()


async def test_timeout_and_malformed_responses_are_errors(canned) -> None:
    _server, url = await canned(lambda req, n: None if n == 1 else b"garbage\r\n\r\n")
    pool = HttpPool(url, timeout=0.2)
    assert (await fetch(pool))[4] == "timeout"
    error = (await fetch(pool))[4]
    assert error is not None and error.startswith("malformed response")
    pool.close()


async def test_connection_limit_queues_requests(canned) -> None:
    server, url = await canned(lambda req, n: ok())
    pool = HttpPool(url, max_connections=1)
    results = await asyncio.gather(*(fetch(pool) for _ in range(4)))
    assert [r[0] for r in results] == [200] * 4
    assert pool.queued == 3
    assert server.connections == 1
    pool.close()


async def test_connect_errors_reach_the_callback() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pool = HttpPool(f"http://127.0.0.1:{port}")
    error = (await fetch(pool))[4]
    assert error is not None and error.startswith("connect: ")
    assert pool.connect_errors == 1
    pool.close()


async def test_close_reports_unfinished_requests(canned) -> None:
    _server, url = await canned(lambda req, n: None)
    pool = HttpPool(url)
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    pool.submit(pool.encode("GET", "/"), head=False, keep=False, done=lambda *a: fut.set_result(a))
    await asyncio.sleep(0.05)
    pool.close()
    assert (await fut)[4] == "unfinished at end of run"


def test_encode_request() -> None:
    raw = encode_request("GET", "/a?b=1", "h:1", (("Accept", "x"),))
    assert (
        raw == b"GET /a?b=1 HTTP/1.1\r\nHost: h:1\r\nAccept: x\r\nUser-Agent: lagless-bench\r\n\r\n"
    )
    with pytest.raises(LaglessError, match="line break"):
        encode_request("GET", "/", "h", (("X", "a\r\nEvil: 1"),))


def test_only_plain_http_base_urls() -> None:
    with pytest.raises(LaglessError, match="plain HTTP"):
        HttpPool("https://example.com")
    with pytest.raises(LaglessError, match="no host"):
        HttpPool("http://")

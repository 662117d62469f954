"""ASGI and WSGI adapters for :class:`~lagless.payload._static.StaticFiles`: they pull the path
and headers out of the request, ask for a plan and send it (the Django one is in ``_django``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from lagless.payload._static import CHUNK, Plan, StaticFiles

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_NOT_FOUND = (404, [("content-type", "text/plain; charset=utf-8"), ("content-length", "9")])


def _files(directory: str | os.PathLike[str] | StaticFiles, **options: Any) -> StaticFiles:
    return directory if isinstance(directory, StaticFiles) else StaticFiles(directory, **options)


def _route_path(scope: Scope) -> str:
    """The path below the mount point: Starlette's ``Mount`` keeps the full ``path`` and grows
    ``root_path``; a bare ASGI server gives ``root_path`` only when configured with one."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def _read(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


async def send_plan(plan: Plan, send: Send) -> None:
    """Send a plan over ASGI. Bytes in memory go in one message; a large file is read in
    64 KiB chunks on the default executor so the event loop never waits on the disk."""
    await send(
        {
            "type": "http.response.start",
            "status": plan.status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in plan.headers],
        }
    )
    if plan.data is not None:
        await send({"type": "http.response.body", "body": plan.data})
        return
    if plan.path is None:
        await send({"type": "http.response.body", "body": b""})
        return
    loop = asyncio.get_running_loop()
    offset, remaining = plan.offset, plan.length
    while remaining > 0:
        n = min(CHUNK, remaining)
        chunk = await loop.run_in_executor(None, _read, plan.path, offset, n)
        if not chunk:
            break  # the file shrank under us; end the body rather than loop
        offset += len(chunk)
        remaining -= len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
    if remaining > 0:
        await send({"type": "http.response.body", "body": b""})


def _asgi_headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope.get("headers", ()):
        key = k.decode("latin-1").lower()
        value = v.decode("latin-1")
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


class StaticApp:
    """An ASGI app serving a folder; mount it under a prefix::

        app.mount("/static", StaticApp("build/static"))        # FastAPI / Starlette

    Unknown paths get 404; see :class:`~lagless.payload._static.StaticFiles` for the rules.
    """

    def __init__(self, directory: str | os.PathLike[str] | StaticFiles, **options: Any) -> None:
        self.files = _files(directory, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError("StaticApp serves HTTP only")
        entry = self.files.lookup(_route_path(scope))
        if entry is None:
            status, headers = _NOT_FOUND
            await send_plan(Plan(status, headers, data=b"Not Found"), send)
            return
        await send_plan(self.files.respond(entry, scope["method"], _asgi_headers(scope)), send)


class StaticMiddleware:
    """ASGI middleware serving ``directory`` under ``prefix`` in front of any app; other paths,
    and files it does not have, go on to the app::

        app = StaticMiddleware(app, directory="build/static", prefix="/static")
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        directory: str | os.PathLike[str] | StaticFiles,
        prefix: str = "/static",
        **options: Any,
    ) -> None:
        self.app = app
        self.files = _files(directory, **options)
        self.prefix = prefix.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            prefix = self.prefix
            if path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] == "/":
                entry = self.files.lookup(path[len(prefix) :])
                if entry is not None:
                    plan = self.files.respond(entry, scope["method"], _asgi_headers(scope))
                    await send_plan(plan, send)
                    return
        await self.app(scope, receive, send)


def _environ_headers(environ: Environ) -> dict[str, str]:
    return {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }


def _file_chunks(path: str, offset: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(offset)
        while length > 0:
            chunk = f.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def wsgi_body(plan: Plan, environ: Environ) -> Iterable[bytes]:
    """The WSGI iterable for a plan: bytes, the server's ``wsgi.file_wrapper`` for a whole
    large file (sendfile where the server supports it), or a chunk generator for a range."""
    if plan.data is not None:
        return [plan.data]
    if plan.path is None:
        return []
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None and plan.offset == 0 and plan.length == os.path.getsize(plan.path):
        # The server closes the file (PEP 3333 file_wrapper contract).
        body: Iterable[bytes] = wrapper(open(plan.path, "rb"), CHUNK)  # noqa: SIM115
        return body
    return _file_chunks(plan.path, plan.offset, plan.length)


def _status_line(code: int) -> str:
    from http import HTTPStatus

    return f"{code} {HTTPStatus(code).phrase}"


class WSGIStaticApp:
    """A WSGI app serving a folder (``PATH_INFO`` below the mount is the file's path)."""

    def __init__(self, directory: str | os.PathLike[str] | StaticFiles, **options: Any) -> None:
        self.files = _files(directory, **options)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        entry = self.files.lookup(environ.get("PATH_INFO", "/"))
        if entry is None:
            status, headers = _NOT_FOUND
            start_response(_status_line(status), headers)
            return [b"Not Found"]
        plan = self.files.respond(
            entry, environ.get("REQUEST_METHOD", "GET"), _environ_headers(environ)
        )
        start_response(_status_line(plan.status), plan.headers)
        return wsgi_body(plan, environ)


class WSGIStaticMiddleware:
    """WSGI middleware serving ``directory`` under ``prefix`` in front of any app (Flask)::

    app.wsgi_app = WSGIStaticMiddleware(app.wsgi_app, directory="build/static")
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        directory: str | os.PathLike[str] | StaticFiles,
        prefix: str = "/static",
        **options: Any,
    ) -> None:
        self.app = app
        self.files = _files(directory, **options)
        self.prefix = prefix.rstrip("/")

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        prefix = self.prefix
        if path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] == "/":
            entry = self.files.lookup(path[len(prefix) :])
            if entry is not None:
                plan = self.files.respond(
                    entry, environ.get("REQUEST_METHOD", "GET"), _environ_headers(environ)
                )
                start_response(_status_line(plan.status), plan.headers)
                return wsgi_body(plan, environ)
        return self.app(environ, start_response)

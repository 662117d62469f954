"""Calling an ASGI app directly, to see exactly the messages it sends (a test client would
decompress bodies and normalise paths, hiding what these tests check)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        return ", ".join(values) if values else None


async def call(
    app: Any,
    path: str = "/",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    root_path: str = "",
) -> Result:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
    }
    result = Result()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        result.messages.append(message)
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = [(k.decode(), v.decode()) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            result.chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return result


def simple_app(
    body: bytes | list[bytes], *, status: int = 200, headers: dict[str, str] | None = None
) -> Any:
    """An ASGI app sending ``body`` (a list: streamed, one message per chunk)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        hdrs = {"content-type": "application/json", **(headers or {})}
        if isinstance(body, bytes) and "content-length" not in hdrs:
            hdrs["content-length"] = str(len(body))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in hdrs.items()],
            }
        )
        if isinstance(body, bytes):
            await send({"type": "http.response.body", "body": body})
        else:
            for i, chunk in enumerate(body):
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": i < len(body) - 1}
                )

    return app

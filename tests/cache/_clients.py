"""Framework test clients whose every response is checked by httplint."""

from __future__ import annotations

from email.utils import formatdate
from typing import Any

import httpx

from tests.cache._lint import assert_clean


def lint_httpx(response: httpx.Response) -> None:
    response.read()
    request = response.request
    assert_clean(
        request.method,
        str(request.url),
        response.status_code,
        response.headers.multi_items(),
        response.content,
        request.headers.multi_items(),
    )


async def alint_httpx(response: httpx.Response) -> None:
    await response.aread()
    request = response.request
    assert_clean(
        request.method,
        str(request.url),
        response.status_code,
        response.headers.multi_items(),
        response.content,
        request.headers.multi_items(),
    )


class ServerDate:
    """What uvicorn does under every ASGI app: prepend a Date header. Test clients do not, and
    httplint rightly wants one next to Last-Modified/Expires (RFC 9110 §6.6.1)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def dated(message: Any) -> None:
            if message["type"] == "http.response.start":
                date = formatdate(usegmt=True).encode()
                message = {**message, "headers": [(b"date", date), *message.get("headers", [])]}
            await send(message)

        await self.app(scope, receive, dated if scope["type"] == "http" else send)


def linted_testclient(app: Any, **kwargs: Any) -> Any:
    from starlette.testclient import TestClient

    client = TestClient(ServerDate(app), **kwargs)
    client.event_hooks = {"request": [], "response": [lint_httpx]}
    return client


def linted_asyncclient(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=ServerDate(app)),
        base_url="http://testserver",
        event_hooks={"response": [alint_httpx]},
    )

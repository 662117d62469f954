"""FastAPI / Starlette responses: fast JSON, and JSON-or-MessagePack by ``Accept``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from lagless.payload._json import default_serializer
from lagless.payload._respond import render_payload


class LaglessJSONResponse(Response):
    """A ``JSONResponse`` encoded by msgspec, with lagless's type support (datetimes, UUIDs,
    Decimals, dataclasses, Pydantic models, Structs, SQLAlchemy and Django objects)::

        app = FastAPI(default_response_class=LaglessJSONResponse)

    For the full speed-up in FastAPI, *return* it (``return LaglessJSONResponse(items)``):
    FastAPI then skips its own validation and ``jsonable_encoder`` pass, which is most of
    the cost of its default path (see bench/payload.py).
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return default_serializer().json(content)


class FastResponse(Response):
    """JSON or MessagePack, whichever the request's ``Accept`` prefers, with ``Vary: Accept``;
    optionally trimmed to ``?fields=``::

        @app.get("/items")
        async def items(request: Request):
            return FastResponse(await load_items(), request=request, sparse=list[Item])

    ``sparse=True`` trims to ``?fields=a,b.c`` and answers 400 for a name no item has;
    ``sparse=<schema type>`` checks names against the declared fields (right even for an
    empty list). Without ``request`` the response is JSON.
    """

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        *,
        request: Request | None = None,
        sparse: Any = False,
        msgpack: bool = True,
        background: BackgroundTask | None = None,
    ) -> None:
        accept = request.headers.get("accept") if request is not None else None
        fields = request.query_params.get("fields") if request is not None else None
        rendered = render_payload(
            content,
            accept=accept,
            fields=fields,
            sparse=sparse,
            status=status_code,
            msgpack=msgpack,
        )
        super().__init__(rendered.body, rendered.status, headers, rendered.media_type, background)
        if msgpack:
            self.headers.add_vary_header("Accept")

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else default_serializer().json(content)

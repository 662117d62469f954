"""The framework-neutral heart of a negotiating response: pick the format, trim the fields,
encode. Every adapter (Starlette, Flask, Django) calls :func:`render_payload` with the header
and query values it pulled from its own request object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lagless.payload._json import default_serializer
from lagless.payload._negotiation import JSON, MSGPACK, negotiate_media_type
from lagless.payload._sparse import FieldsError, apply_fields, parse_fields


@dataclass(slots=True)
class Rendered:
    body: bytes
    media_type: str
    status: int


def render_payload(
    content: Any,
    *,
    accept: str | None,
    fields: str | None = None,
    sparse: Any = False,
    status: int = 200,
    msgpack: bool = True,
) -> Rendered:
    """Encode ``content`` for a client sending ``accept``.

    ``sparse``: ``False`` ignores ``fields``; ``True`` trims ``content`` to the ``?fields=``
    value ``fields``; a schema type (``list[Item]``, ``Item``) also checks the names against
    it. A bad ``fields`` value turns the response into a 400 with a JSON explanation. When the
    client accepts neither JSON nor MessagePack the JSON representation is sent anyway
    (RFC 9110 §12.5.1 lets a server send its default rather than 406).
    """
    offered = (JSON, MSGPACK) if msgpack else (JSON,)
    media = negotiate_media_type(accept, offered) or JSON
    fmt = "msgpack" if media == MSGPACK else "json"
    serializer = default_serializer()
    if sparse is not False:
        try:
            content = apply_fields(
                content, parse_fields(fields), model=None if sparse is True else sparse
            )
        except FieldsError as exc:
            return Rendered(serializer.encode(exc.detail, fmt), media, 400)
    return Rendered(serializer.encode(content, fmt), media, status)

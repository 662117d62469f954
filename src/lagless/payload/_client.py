"""Reading what lagless's responses send: JSON or MessagePack, possibly compressed.

Python clients (tests, other services) ask for MessagePack with :data:`ACCEPT_MSGPACK` and
read any answer with :func:`decode_response`. Browsers use ``lagless-msgpack.js`` shipped in
this package (:func:`js_client_path`); serve it with your static files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from lagless.payload._compression import decompress

#: An ``Accept`` value preferring MessagePack and falling back to JSON.
ACCEPT_MSGPACK: Final = "application/msgpack, application/x-msgpack;q=0.9, application/json;q=0.5"


def decode(
    body: bytes, content_type: str | None = None, content_encoding: str | None = None
) -> Any:
    """Decode a response body by its ``Content-Type`` (MessagePack or JSON) after undoing
    ``Content-Encoding``. HTTP libraries usually undo the encoding already (httpx and requests
    do for gzip and br): pass ``content_encoding`` only for raw bytes."""
    import msgspec

    if content_encoding:
        for coding in reversed([c.strip().lower() for c in content_encoding.split(",")]):
            body = decompress(body, coding)
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media in ("application/msgpack", "application/x-msgpack"):
        return msgspec.msgpack.decode(body)
    return msgspec.json.decode(body)


def decode_response(response: Any) -> Any:
    """Decode an httpx, requests, Flask or Django test response (``.content`` or ``.data``, and
    ``.headers``) whose body the library already decompressed::

        r = httpx.get(url, headers={"Accept": ACCEPT_MSGPACK})
        items = decode_response(r)
    """
    body = getattr(response, "content", None)
    if not isinstance(body, bytes):
        body = response.data  # Werkzeug/Flask test responses
    return decode(body, response.headers.get("content-type"))


def js_client_path() -> Path:
    """Where the browser decoder ``lagless-msgpack.js`` is (a dependency-free script)."""
    return Path(__file__).with_name("static") / "lagless-msgpack.js"

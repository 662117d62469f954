"""Django REST Framework renderers: JSON through msgspec, and MessagePack."""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import BaseRenderer  # type: ignore[import-untyped]

from lagless.payload._json import default_serializer


class LaglessJSONRenderer(BaseRenderer):  # type: ignore[misc]
    """DRF renderer writing JSON through msgspec; first in ``DEFAULT_RENDERER_CLASSES``::

        REST_FRAMEWORK = {"DEFAULT_RENDERER_CLASSES": [
            "lagless.payload.LaglessJSONRenderer", "lagless.payload.MessagePackRenderer"]}

    DRF negotiates between the listed renderers by ``Accept`` and adds ``Vary: Accept``.
    """

    media_type = "application/json"
    format = "json"
    charset = None  # JSON is UTF-8 by definition (RFC 8259 §8.1): no charset parameter

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return b"" if data is None else default_serializer().json(data)


class MessagePackRenderer(BaseRenderer):  # type: ignore[misc]
    """DRF renderer for ``application/msgpack``."""

    media_type = "application/msgpack"
    format = "msgpack"
    charset = None
    render_style = "binary"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return b"" if data is None else default_serializer().msgpack(data)


class XMessagePackRenderer(MessagePackRenderer):
    """The same for clients that still send the unregistered ``application/x-msgpack``."""

    media_type = "application/x-msgpack"

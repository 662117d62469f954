"""Payload tools: fewer, smaller bytes, made faster.

- fast JSON and MessagePack encoding (:func:`dumps`, :class:`Serializer`) with support for
  datetimes, UUIDs, Decimals, dataclasses, Pydantic, msgspec, SQLAlchemy and Django objects;
- responses that negotiate JSON or MessagePack and trim to ``?fields=``:
  :class:`FastResponse` / :class:`LaglessJSONResponse` (FastAPI, Starlette),
  :func:`fast_response` / :class:`LaglessJSONProvider` (Flask), :class:`DjangoFastResponse`,
  :class:`LaglessJSONRenderer` / :class:`MessagePackRenderer` (Django REST Framework);
- compression middleware: :class:`CompressionMiddleware` (ASGI),
  :class:`WSGICompressionMiddleware`, :class:`DjangoCompressionMiddleware`;
- static files with content-hashed names: :class:`StaticApp` / :class:`StaticMiddleware`
  (ASGI), :class:`WSGIStaticApp` / :class:`WSGIStaticMiddleware`,
  :class:`DjangoStaticMiddleware`, :func:`build_static` and :class:`Manifest`.

Framework adapters are imported on first use, so ``import lagless.payload`` costs nothing for
frameworks you do not use. The guide is docs/payload.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lagless.payload._client import ACCEPT_MSGPACK, decode, decode_response, js_client_path
from lagless.payload._compress_middleware import CompressionMiddleware, WSGICompressionMiddleware
from lagless.payload._compression import DEFAULT_LEVELS, compress, decide, decompress
from lagless.payload._json import Serializer, UnsupportedType, dumps, dumps_msgpack, loads
from lagless.payload._manifest import Manifest, ManifestError
from lagless.payload._manifest import build as build_static
from lagless.payload._negotiation import negotiate_encoding, negotiate_media_type
from lagless.payload._sparse import FieldsError, apply_fields, parse_fields
from lagless.payload._static import StaticFiles
from lagless.payload._static_apps import (
    StaticApp,
    StaticMiddleware,
    WSGIStaticApp,
    WSGIStaticMiddleware,
)

if TYPE_CHECKING:
    from lagless.payload._django import (
        DjangoCompressionMiddleware,
        DjangoFastResponse,
        DjangoStaticMiddleware,
    )
    from lagless.payload._drf import (
        LaglessJSONRenderer,
        MessagePackRenderer,
        XMessagePackRenderer,
    )
    from lagless.payload._flask import LaglessJSONProvider, fast_response
    from lagless.payload._starlette import FastResponse, LaglessJSONResponse

_LAZY = {
    "FastResponse": "_starlette",
    "LaglessJSONResponse": "_starlette",
    "LaglessJSONProvider": "_flask",
    "fast_response": "_flask",
    "DjangoFastResponse": "_django",
    "DjangoCompressionMiddleware": "_django",
    "DjangoStaticMiddleware": "_django",
    "LaglessJSONRenderer": "_drf",
    "MessagePackRenderer": "_drf",
    "XMessagePackRenderer": "_drf",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lagless.payload' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lagless.payload.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ACCEPT_MSGPACK",
    "DEFAULT_LEVELS",
    "CompressionMiddleware",
    "DjangoCompressionMiddleware",
    "DjangoFastResponse",
    "DjangoStaticMiddleware",
    "FastResponse",
    "FieldsError",
    "LaglessJSONProvider",
    "LaglessJSONRenderer",
    "LaglessJSONResponse",
    "Manifest",
    "ManifestError",
    "MessagePackRenderer",
    "Serializer",
    "StaticApp",
    "StaticFiles",
    "StaticMiddleware",
    "UnsupportedType",
    "WSGICompressionMiddleware",
    "WSGIStaticApp",
    "WSGIStaticMiddleware",
    "XMessagePackRenderer",
    "apply_fields",
    "build_static",
    "compress",
    "decide",
    "decode",
    "decode_response",
    "decompress",
    "dumps",
    "dumps_msgpack",
    "fast_response",
    "js_client_path",
    "loads",
    "negotiate_encoding",
    "negotiate_media_type",
    "parse_fields",
]

"""Turning cached values into bytes and back.

Every backend stores bytes, the in-memory one included: a value read from the cache is a fresh
copy (a caller mutating it cannot change what the next caller sees), and a value that cannot
round-trip fails in development with the memory backend, not first in production with Redis.

The default is msgpack (falls back to JSON when msgpack is not installed). Pickle is available
only on request and always HMAC-signed: anyone who can write to a Redis holding unsigned pickles
can run code in every process that reads them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from lagless.errors import LaglessError


class SerializationError(LaglessError):
    """A cached value could not be encoded, or stored bytes could not be decoded or verified."""


@runtime_checkable
class Serializer(Protocol):
    """Encode values to bytes and back. ``tag`` (one byte) is stored with each value so bytes
    written by one serializer are never decoded by another."""

    tag: int

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JsonSerializer:
    """JSON (orjson when installed). Round-trips dicts, lists, strings, numbers, bools, None."""

    tag = 1

    def __init__(self) -> None:
        self._dumps: Callable[[Any], bytes]
        self._loads: Callable[[bytes], Any]
        try:
            import orjson
        except ImportError:  # pragma: no cover - orjson is in the `fast` extra
            self._dumps = lambda v: json.dumps(v, separators=(",", ":")).encode()
            self._loads = json.loads
        else:
            self._dumps = orjson.dumps
            self._loads = orjson.loads

    def dumps(self, value: Any) -> bytes:
        try:
            return self._dumps(value)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"cannot encode {type(value).__name__} as JSON: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        try:
            return self._loads(data)
        except ValueError as exc:
            raise SerializationError(f"stored bytes are not valid JSON: {exc}") from exc


class MsgpackSerializer:
    """msgpack: compact and fast; also round-trips ``bytes`` and timezone-aware datetimes.
    Tuples come back as lists (as with JSON)."""

    tag = 2

    def __init__(self) -> None:
        import msgpack

        self._packb = msgpack.packb
        self._unpackb = msgpack.unpackb

    def dumps(self, value: Any) -> bytes:
        try:
            # packb, not a shared Packer: a Packer is not safe to share between threads.
            return self._packb(value, use_bin_type=True, datetime=True)  # type: ignore[no-any-return]
        except (TypeError, ValueError, OverflowError) as exc:
            if isinstance(value, datetime) or "datetime" in str(exc):
                raise SerializationError(
                    "msgpack stores only timezone-aware datetimes; attach a tzinfo"
                ) from exc
            raise SerializationError(
                f"cannot encode {type(value).__name__} with msgpack: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        try:
            return self._unpackb(data, raw=False, strict_map_key=False, timestamp=3)
        except Exception as exc:
            raise SerializationError(f"stored bytes are not valid msgpack: {exc}") from exc


class PickleSerializer:
    """Pickle, signed with HMAC-SHA256 under ``secret``; unsigned or tampered bytes are refused
    before ``pickle.loads`` sees them. Use only for values msgpack/JSON cannot hold::

        RedisBackend(url=..., serializer=PickleSerializer(secret=os.environ["CACHE_KEY"]))
    """

    tag = 3
    _SIG = 32

    def __init__(self, *, secret: bytes | str) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        if len(secret) < 16:
            raise ValueError("PickleSerializer needs a secret of at least 16 bytes")
        self._secret = secret

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def dumps(self, value: Any) -> bytes:
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(f"cannot pickle {type(value).__name__}: {exc}") from exc
        return self._sign(payload) + payload

    def loads(self, data: bytes) -> Any:
        signature, payload = data[: self._SIG], data[self._SIG :]
        if len(signature) != self._SIG or not hmac.compare_digest(signature, self._sign(payload)):
            raise SerializationError("cached pickle has a bad signature; refusing to load it")
        return pickle.loads(payload)


def default_serializer() -> Serializer:
    """msgpack when installed, else JSON."""
    try:
        return MsgpackSerializer()
    except ImportError:  # pragma: no cover - msgpack is in the `fast` extra
        return JsonSerializer()

"""Turning Python objects into JSON or MessagePack bytes, fast.

One engine, msgspec, for both formats so an object encodes the same way whichever the client
asked for. msgspec handles dicts, lists, datetimes, dates, times, timedeltas, UUIDs, Decimals,
enums, dataclasses, sets and its own ``Struct`` natively, in C. Everything else goes through
:func:`to_builtins`, which knows:

- Pydantic models (``model_dump()``; what the model declares, with its aliases);
- SQLAlchemy ``Row`` objects (their mapping) and ORM instances (their mapped *column*
  attributes that are already loaded: an expired or deferred column would be loaded by a query
  from inside the serializer, an N+1 nobody sees; relationships are left out because
  ``back_populates`` pairs make cycles; nest them with a Pydantic model or Struct instead);
- Django model instances (their concrete fields by ``attname``, so a foreign key is written as
  ``author_id`` and costs no query; deferred fields are left out for the same reason);
- ``pathlib`` paths (as strings), objects with a ``__json__()`` method, subclasses of
  ``str``/``int``/``float`` (DRF's ``ErrorDetail``) and Django's lazy translation strings.

The converter for a type is found once and cached, so the per-object cost of the fallback is
one dict lookup. Decimals are written as strings by default (lossless; JavaScript numbers are
binary floats); pass ``decimal_format="number"`` to :class:`Serializer` for numbers.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from time import perf_counter_ns as _now
from typing import Any, Literal

from lagless._spans import record
from lagless._trace import _current_trace

Converter = Callable[[Any], Any]


class UnsupportedType(TypeError):
    """An object of a type lagless does not know how to serialize."""


def _pydantic(obj: Any) -> Any:
    return obj.model_dump()


def _row(obj: Any) -> Any:
    return dict(obj._mapping)


def _sqlalchemy_orm(obj: Any) -> Any:
    from sqlalchemy import inspect

    state = inspect(obj)
    loaded = state.dict
    out: dict[str, Any] = {}
    # Column attributes in declaration order, only those loaded, so serializing never issues a
    # query (an expired or deferred column is left out).
    for attr in state.mapper.column_attrs:
        if attr.key in loaded:
            out[attr.key] = loaded[attr.key]
    return out


def _django_model(obj: Any) -> Any:
    deferred = obj.get_deferred_fields()
    return {
        f.attname: getattr(obj, f.attname)
        for f in obj._meta.concrete_fields
        if f.attname not in deferred
    }


def _json_method(obj: Any) -> Any:
    return obj.__json__()


def _fspath(obj: Any) -> Any:
    return os.fspath(obj)


def _find_converter(tp: type) -> Converter | None:
    # str/int/float subclasses (DRF's ErrorDetail, Django's SafeString) msgspec refuses.
    if issubclass(tp, str):
        return str
    if issubclass(tp, int):
        return int
    if issubclass(tp, float):
        return float
    if tp.__name__ == "__proxy__" and tp.__module__ == "django.utils.functional":
        return str  # a lazy translation string (gettext_lazy) in a DRF error message
    if hasattr(tp, "__pydantic_serializer__") and hasattr(tp, "model_dump"):
        return _pydantic
    if hasattr(tp, "__mapper__") and hasattr(tp, "_sa_class_manager"):
        return _sqlalchemy_orm
    if hasattr(tp, "_mapping") and hasattr(tp, "_asdict") and hasattr(tp, "_fields"):
        return _row
    meta = getattr(tp, "_meta", None)
    if meta is not None and hasattr(meta, "concrete_fields") and hasattr(tp, "pk"):
        return _django_model
    if hasattr(tp, "__json__"):
        return _json_method
    if hasattr(tp, "__fspath__"):
        return _fspath
    return None


_converters: dict[type, Converter | None] = {}
_converters_lock = threading.Lock()


def converter_for(tp: type) -> Converter | None:
    """The cached converter for ``tp`` (``None`` when msgspec handles it or nothing does)."""
    try:
        return _converters[tp]
    except KeyError:
        conv = _find_converter(tp)
        with _converters_lock:
            # Bounded: types are created by code, not by requests, but stay safe anyway.
            if len(_converters) < 4096:
                _converters[tp] = conv
        return conv


def to_builtins(obj: Any) -> Any:
    """One level of conversion of an object msgspec does not know (its ``enc_hook``).

    Raises :class:`UnsupportedType` naming the type for anything unknown, so a bad return value
    fails loudly at the handler rather than producing ``"<object at 0x...>"``.
    """
    conv = converter_for(type(obj))
    if conv is None:
        raise UnsupportedType(
            f"lagless cannot serialize an object of type {type(obj).__module__}."
            f"{type(obj).__qualname__}; return a dict, dataclass, Pydantic model, msgspec "
            "Struct, SQLAlchemy row or Django model, or give the class a __json__() method"
        )
    return conv(obj)


class Serializer:
    """A JSON and MessagePack encoder pair sharing one type policy.

    Keep one per process (encoders are reusable and thread-safe); :data:`default_serializer`
    is the one lagless's responses use.
    """

    __slots__ = ("_json", "_msgpack", "decimal_format")

    def __init__(self, *, decimal_format: Literal["string", "number"] = "string") -> None:
        import msgspec

        self.decimal_format = decimal_format
        self._json = msgspec.json.Encoder(enc_hook=to_builtins, decimal_format=decimal_format)
        self._msgpack = msgspec.msgpack.Encoder(enc_hook=to_builtins, decimal_format=decimal_format)

    def json(self, obj: Any) -> bytes:
        """``obj`` as compact UTF-8 JSON, recorded as a ``serialize`` span in a request."""
        trace = _current_trace.get()
        if trace is None:
            return self._json.encode(obj)
        start = _now()
        body = self._json.encode(obj)
        record(trace, "serialize", "json", start, bytes=len(body), format="json")
        return body

    def msgpack(self, obj: Any) -> bytes:
        """``obj`` as MessagePack, recorded as a ``serialize`` span in a request."""
        trace = _current_trace.get()
        if trace is None:
            return self._msgpack.encode(obj)
        start = _now()
        body = self._msgpack.encode(obj)
        record(trace, "serialize", "msgpack", start, bytes=len(body), format="msgpack")
        return body

    def encode(self, obj: Any, fmt: str) -> bytes:
        """``obj`` in ``fmt`` (``"json"`` or ``"msgpack"``)."""
        return self.msgpack(obj) if fmt == "msgpack" else self.json(obj)


_default: Serializer | None = None


def default_serializer() -> Serializer:
    """The process-wide :class:`Serializer` (created on first use so importing is free)."""
    global _default
    if _default is None:
        _default = Serializer()
    return _default


def dumps(obj: Any) -> bytes:
    """``obj`` as JSON bytes with lagless's type support. A drop-in for ``orjson.dumps``::

    body = lagless.payload.dumps({"when": datetime.now(UTC), "id": uuid4()})
    """
    return default_serializer().json(obj)


def dumps_msgpack(obj: Any) -> bytes:
    """``obj`` as MessagePack bytes with lagless's type support."""
    return default_serializer().msgpack(obj)


def loads(data: bytes | str) -> Any:
    """Parse JSON (msgspec's decoder, several times faster than ``json.loads``)."""
    import msgspec

    return msgspec.json.decode(data)

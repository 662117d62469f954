"""Sparse fieldsets: ``?fields=id,name,owner.email`` returns only what the client asked for.

The trimming happens on the Python objects *before* serialization: only the requested
attributes are read, so a model with a 20 KB ``description`` the client did not ask for never
reaches the encoder (trimming the JSON afterwards would pay to encode, parse and re-encode it).

Unknown fields are a client error, answered with 400 and the list of known fields, because a
typo silently returning ``{}`` is worse than a clear message. When the payload's type is known
(a Pydantic model, msgspec Struct or dataclass, or a list of them), pass it as ``model`` and the
check runs against the declared fields, so it holds even for an empty list.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from typing import Any

from lagless.errors import LaglessError

#: A field tree: each requested name maps to its requested sub-fields (empty: the whole value).
FieldTree = dict[str, "FieldTree"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,99}\Z")
#: Bounds on what a query string may ask for, so a crafted ``?fields=`` cannot cost much.
MAX_FIELDS = 200
MAX_DEPTH = 8


class FieldsError(LaglessError, ValueError):
    """A bad ``?fields=`` value. ``status`` is 400; ``detail`` is a JSON-ready explanation."""

    status = 400

    def __init__(
        self, message: str, *, unknown: list[str] | None = None, known: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.unknown = unknown or []
        self.known = known or []

    @property
    def detail(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": "invalid_fields", "message": str(self)}
        if self.unknown:
            out["unknown"] = self.unknown
        if self.known:
            out["known"] = self.known
        return out


def parse_fields(value: str | None) -> FieldTree | None:
    """``"a,b,c.d"`` -> ``{"a": {}, "b": {}, "c": {"d": {}}}``; ``None``/blank -> ``None``
    (no trimming). Asking for ``c`` and ``c.d`` keeps all of ``c``."""
    if value is None or not value.strip():
        return None
    tree: FieldTree = {}
    whole: set[tuple[str, ...]] = set()
    paths = [p.strip() for p in value.split(",")]
    if len(paths) > MAX_FIELDS:
        raise FieldsError(f"too many fields requested ({len(paths)} > {MAX_FIELDS})")
    for path in paths:
        if not path:
            raise FieldsError("empty field name in ?fields= (check for a stray comma)")
        parts = path.split(".")
        if len(parts) > MAX_DEPTH:
            raise FieldsError(f"field path {path!r} is nested deeper than {MAX_DEPTH}")
        for part in parts:
            if not _NAME.match(part):
                raise FieldsError(f"invalid field name {part!r} in {path!r}")
        node = tree
        for part in parts:
            node = node.setdefault(part, {})
        whole.add(tuple(parts))
    for whole_path in sorted(whole, key=len, reverse=True):  # deepest first
        node = tree
        for part in whole_path:
            node = node[part]
        node.clear()  # the whole value was asked for: sub-field requests add nothing
    return tree


def _declared(tp: type) -> dict[str, Any] | None:
    """Declared field names -> annotations for a schema class, else ``None``."""
    fields = getattr(tp, "model_fields", None)
    if isinstance(fields, Mapping) and hasattr(tp, "__pydantic_serializer__"):
        out = {name: f.annotation for name, f in fields.items()}
        for name, cf in getattr(tp, "model_computed_fields", {}).items():
            out[name] = getattr(cf, "return_type", Any)
        return out
    struct_fields = getattr(tp, "__struct_fields__", None)
    if struct_fields is not None:
        hints = typing.get_type_hints(tp)
        return {name: hints.get(name, Any) for name in struct_fields}
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(tp)}
    return None


def _schema_of(annotation: Any) -> type | None:
    """The schema class inside ``Item``, ``list[Item]``, ``Item | None``..., if one."""
    if isinstance(annotation, type) and _declared(annotation) is not None:
        return annotation
    for arg in typing.get_args(annotation):
        found = _schema_of(arg)
        if found is not None:
            return found
    return None


def validate_fields(tree: FieldTree, model: Any, prefix: str = "") -> None:
    """Raise :class:`FieldsError` if ``tree`` names a field ``model`` does not declare."""
    schema = _schema_of(model)
    if schema is None:
        return
    declared = _declared(schema) or {}
    unknown = [prefix + name for name in tree if name not in declared]
    if unknown:
        raise FieldsError(
            _unknown_message(unknown, declared), unknown=unknown, known=sorted(declared)
        )
    for name, sub in tree.items():
        if sub:
            if _schema_of(declared[name]) is None:
                raise FieldsError(
                    f"field {prefix + name!r} has no sub-fields",
                    unknown=[prefix + name + "." + k for k in sub],
                )
            validate_fields(sub, declared[name], prefix + name + ".")


def _unknown_message(unknown: list[str], known: Any) -> str:
    names = ", ".join(repr(u) for u in unknown)
    return f"unknown field(s) in ?fields=: {names}; known fields: {', '.join(sorted(known))}"


def _field_names(obj: Any) -> Any:
    """The names ``obj`` exposes to ``?fields=``, or ``None`` for a scalar."""
    if isinstance(obj, Mapping):
        return obj.keys()
    tp = type(obj)
    declared = _declared(tp)
    if declared is not None:
        return declared.keys()
    mapper = getattr(tp, "__mapper__", None)
    if mapper is not None:
        return [a.key for a in mapper.column_attrs]
    meta = getattr(tp, "_meta", None)
    if meta is not None and hasattr(meta, "concrete_fields"):
        return [f.attname for f in meta.concrete_fields]
    fields = getattr(obj, "_fields", None)
    if isinstance(fields, tuple) and hasattr(obj, "_mapping"):
        return fields
    return None


def _get(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, Mapping) else getattr(obj, name)


def _trim(obj: Any, tree: FieldTree, prefix: str, seen: set[str], missing: dict[str, Any]) -> Any:
    if isinstance(obj, list | tuple):
        return [_trim(item, tree, prefix, seen, missing) for item in obj]
    names = _field_names(obj)
    if names is None:
        for name in tree:
            missing.setdefault(prefix + name, ())
        return obj
    out: dict[str, Any] = {}
    for name, sub in tree.items():
        path = prefix + name
        if name not in names:
            missing.setdefault(path, names)
            continue
        seen.add(path)
        value = _get(obj, name)
        out[name] = _trim(value, sub, path + ".", seen, missing) if sub else value
    return out


def apply_fields(data: Any, tree: FieldTree | None, *, model: Any = None) -> Any:
    """``data`` trimmed to ``tree`` (from :func:`parse_fields`); ``None`` returns it as is.

    Lists are trimmed item by item; a field is unknown when no item has it (an optional key
    missing from some items is simply absent there). With ``model`` the tree is first checked
    against the declared fields. Raises :class:`FieldsError` for unknown fields::

        apply_fields(items, parse_fields(request.query_params.get("fields")), model=list[Item])
    """
    if tree is None:
        return data
    if model is not None:
        validate_fields(tree, model)
    seen: set[str] = set()
    missing: dict[str, Any] = {}
    out = _trim(data, tree, "", seen, missing)
    unknown = [path for path in missing if path not in seen]
    if unknown:
        known = next((missing[p] for p in unknown if missing[p]), ())
        raise FieldsError(_unknown_message(unknown, known), unknown=unknown, known=sorted(known))
    return out

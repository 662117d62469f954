"""Scenario files: which requests to make, shared by ``lagless doctor`` and ``lagless bench``.

A scenario is TOML or YAML (chosen by the file's suffix) with the same shape in both::

    # scenario.toml
    headers = { Authorization = "Bearer dev-token" }   # sent with every request

    [params]                   # path parameters of discovered routes, by name
    book_id = [1, 2, 3]        # a list: one value is drawn per request, in turn

    [[request]]
    name = "list books"        # optional; defaults to "METHOD path"
    path = "/api/books"
    query = { limit = 20 }
    weight = 3                 # relative share of requests (bench); default 1
    capture = { first = "json:items.0.id", tag = "header:etag" }

    [[request]]
    method = "POST"            # unsafe methods run only because a scenario names them
    path = "/api/orders"
    json = { book_id = "{first}", quantity = 1 }

``{name}`` in a path, query value, header value, string body or JSON string is replaced by a
path parameter, a value drawn from ``[params]``/``[vars]``, or a value captured from an earlier
response. A JSON string that is exactly ``"{name}"`` takes the value's own type (a captured
integer stays an integer).

Errors are :class:`ScenarioError` and name the file and line, because a scenario is written by
hand and "KeyError: 'path'" helps nobody. ``tomllib`` keeps no positions, so the lines of TOML
tables are found by scanning the text for their headers; YAML's nodes carry their own marks.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

from lagless.errors import LaglessError

#: Methods that change state: only run when a scenario names them (RFC 9110 §9.2.1).
UNSAFE_METHODS: Final[frozenset[str]] = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_METHODS: Final[frozenset[str]] = frozenset(
    {"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"}
)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)(?::[^}]*)?\}")
_TOP_KEYS: Final[frozenset[str]] = frozenset(
    {"headers", "params", "vars", "request", "requests", "base_url"}
)
_REQUEST_KEYS: Final[frozenset[str]] = frozenset(
    {
        "name",
        "method",
        "path",
        "query",
        "headers",
        "body",
        "json",
        "weight",
        "params",
        "capture",
    }
)


class ScenarioError(LaglessError):
    """A scenario file that cannot be used; the message names the file and line."""

    def __init__(self, message: str, *, source: str = "<scenario>", line: int | None = None):
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")


@dataclasses.dataclass(frozen=True)
class Capture:
    """Where to take a value from a response: ``json:a.0.b``, ``header:NAME`` or ``status``."""

    var: str
    source: str  # "json" | "header" | "status"
    path: tuple[str, ...]

    def extract(self, status: int, headers: Mapping[str, str], body: bytes) -> Any:
        """The captured value, or ``None`` when the response does not have it."""
        if self.source == "status":
            return status
        if self.source == "header":
            lowered = {k.lower(): v for k, v in headers.items()}
            return lowered.get(self.path[0].lower())
        try:
            value: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        for part in self.path:
            if isinstance(value, Mapping):
                value = value.get(part)
            elif isinstance(value, list) and part.lstrip("-").isdigit():
                index = int(part)
                value = value[index] if -len(value) <= index < len(value) else None
            else:
                return None
            if value is None:
                return None
        return value


@dataclasses.dataclass(frozen=True)
class RequestSpec:
    """One request of a scenario, before placeholders are filled."""

    method: str
    path: str
    name: str
    query: tuple[tuple[str, Any], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    json: Any = None
    has_json: bool = False
    weight: float = 1.0
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    captures: tuple[Capture, ...] = ()
    source: str = "<scenario>"
    line: int | None = None

    @property
    def unsafe(self) -> bool:
        return self.method in UNSAFE_METHODS

    @property
    def placeholders(self) -> list[str]:
        """The ``{name}`` placeholders of the path, in order."""
        return [m.group(1) for m in _PLACEHOLDER.finditer(self.path)]


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A parsed scenario file. ``params`` and ``vars`` map a name to a value or a list of
    values to draw from; ``requests`` is in file order."""

    requests: tuple[RequestSpec, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    base_url: str | None = None
    source: str = "<scenario>"

    def find(self, method: str, path: str) -> RequestSpec | None:
        """The scenario's request for ``method path`` (a route template), if it names one."""
        for spec in self.requests:
            if spec.method == method and _same_template(spec.path, path):
                return spec
        return None


def _same_template(a: str, b: str) -> bool:
    def norm(p: str) -> str:
        return _PLACEHOLDER.sub("{}", p.split("?", 1)[0]).rstrip("/") or "/"

    return norm(a) == norm(b)


@dataclasses.dataclass(frozen=True)
class PreparedRequest:
    """A request ready to send: every placeholder filled."""

    spec: RequestSpec
    method: str
    url: str  # path plus query string
    headers: tuple[tuple[str, str], ...]
    body: bytes | None


# -- loading ---------------------------------------------------------------------------------


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file (``.toml``, ``.yaml`` or ``.yml``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario: {exc.strerror or exc}", source=str(p)) from None
    suffix = p.suffix.lower()
    if suffix == ".toml":
        fmt = "toml"
    elif suffix in (".yaml", ".yml"):
        fmt = "yaml"
    else:
        raise ScenarioError(
            f"unknown scenario format {suffix or '(no suffix)'!r}; use .toml, .yaml or .yml",
            source=str(p),
        )
    return parse_scenario(text, fmt=fmt, source=str(p))


def parse_scenario(text: str, *, fmt: str = "toml", source: str = "<scenario>") -> Scenario:
    """Parse scenario text in ``fmt`` (``"toml"`` or ``"yaml"``)."""
    if fmt == "toml":
        data, locate = _load_toml(text, source)
    elif fmt == "yaml":
        data, locate = _load_yaml(text, source)
    else:
        raise ScenarioError(f"unknown scenario format {fmt!r}", source=source)
    return _build(data, locate, source)


# ``locate(section_index, key)`` -> line: section_index is None for the top level, else the
# index of the request; key None means the request's own first line.
Locator = Callable[[int | None, str | None], int | None]


def _load_toml(text: str, source: str) -> tuple[dict[str, Any], Locator]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python < 3.14 has no ``lineno`` attribute; the message ends "(at line N, column M)".
        msg = str(exc)
        found = re.search(r"\s*\(at line (\d+), column \d+\)$", msg)
        line = int(found.group(1)) if found else None
        if found:
            msg = msg[: found.start()]
        raise ScenarioError(f"invalid TOML: {msg}", source=source, line=line) from None
    lines = text.splitlines()
    starts: list[int] = []
    for i, raw in enumerate(lines, 1):
        if re.match(r"\s*\[\[\s*requests?\s*\]\]", raw):
            starts.append(i)

    def locate(index: int | None, key: str | None) -> int | None:
        if index is None:
            first, last = 1, (starts[0] - 1 if starts else len(lines))
        else:
            if index >= len(starts):
                return None
            first = starts[index]
            last = starts[index + 1] - 1 if index + 1 < len(starts) else len(lines)
            if key is None:
                return first
        if key is None:
            return None
        pattern = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=|\s*\[\s*{re.escape(key)}\s*\]")
        for i in range(first, last + 1):
            if pattern.match(lines[i - 1]):
                return i
        return first if index is not None else None

    return data, locate


def _load_yaml(text: str, source: str) -> tuple[dict[str, Any], Locator]:
    try:
        import yaml
    except ImportError:
        raise ScenarioError(
            "YAML scenarios need PyYAML: pip install 'lagless[yaml]'", source=source
        ) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"invalid YAML: {problem}", source=source, line=line) from None
    if data is None:
        data = {}
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        line = root.start_mark.line + 1 if root is not None else None
        raise ScenarioError(
            "a scenario must be a mapping at the top level", source=source, line=line
        )

    def key_lines(node: Any) -> dict[str, int]:
        out: dict[str, int] = {}
        if isinstance(node, yaml.MappingNode):
            for k, _v in node.value:
                out[str(k.value)] = k.start_mark.line + 1
        return out

    top = key_lines(root)
    requests_node: Any = None
    for k, v in root.value:
        if k.value in ("request", "requests"):
            requests_node = v
    items: list[Any] = (
        list(requests_node.value) if isinstance(requests_node, yaml.SequenceNode) else []
    )

    def locate(index: int | None, key: str | None) -> int | None:
        if index is None:
            return top.get(key) if key else None
        if index >= len(items):
            return None
        node = items[index]
        if key is None:
            return int(node.start_mark.line) + 1
        return key_lines(node).get(key, int(node.start_mark.line) + 1)

    return data, locate


# -- validation ------------------------------------------------------------------------------


def _build(data: Mapping[str, Any], locate: Locator, source: str) -> Scenario:
    def fail(msg: str, index: int | None = None, key: str | None = None) -> ScenarioError:
        return ScenarioError(msg, source=source, line=locate(index, key))

    for key in data:
        if key not in _TOP_KEYS:
            raise fail(
                f"unknown key {key!r} (expected one of: {', '.join(sorted(_TOP_KEYS))})", None, key
            )
    headers = _headers(data.get("headers", {}), lambda m: fail(m, None, "headers"))
    params: dict[str, Any] = {}
    for section in ("params", "vars"):
        table = data.get(section, {})
        if not isinstance(table, Mapping):
            raise fail(f"{section!r} must be a table of name = value(s)", None, section)
        for name, value in table.items():
            if isinstance(value, list) and not value:
                raise fail(f"{section}.{name} is an empty list", None, section)
            params[str(name)] = value
    base_url = data.get("base_url")
    if base_url is not None and not isinstance(base_url, str):
        raise fail("'base_url' must be a string", None, "base_url")
    raw_requests = data.get("request", data.get("requests", []))
    if isinstance(raw_requests, Mapping):
        raw_requests = [raw_requests]
    if not isinstance(raw_requests, list):
        raise fail("'request' must be a list of tables ([[request]] in TOML)", None, "request")
    specs = tuple(_request(i, item, locate, source, fail) for i, item in enumerate(raw_requests))
    return Scenario(
        requests=specs, headers=headers, params=params, base_url=base_url, source=source
    )


def _headers(raw: Any, fail: Callable[[str], ScenarioError]) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping):
        raise fail("'headers' must be a table of name = value")
    out = []
    for name, value in raw.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise fail(f"header {name!r} must be a string")
        out.append((str(name), str(value)))
    return tuple(out)


def _request(
    index: int,
    item: Any,
    locate: Locator,
    source: str,
    fail: Callable[[str, int | None, str | None], ScenarioError],
) -> RequestSpec:
    if not isinstance(item, Mapping):
        raise fail("each request must be a table", index, None)
    for key in item:
        if key not in _REQUEST_KEYS:
            raise fail(
                f"unknown request key {key!r} "
                f"(expected one of: {', '.join(sorted(_REQUEST_KEYS))})",
                index,
                key,
            )
    path = item.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise fail("a request needs a 'path' starting with '/'", index, "path" if path else None)
    method = item.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in _METHODS:
        raise fail(f"unknown HTTP method {method!r}", index, "method")
    method = method.upper()
    if "body" in item and "json" in item:
        raise fail("give either 'body' or 'json', not both", index, "json")
    body = item.get("body")
    if body is not None and not isinstance(body, str):
        raise fail("'body' must be a string (use 'json' for structured bodies)", index, "body")
    weight = item.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise fail("'weight' must be a positive number", index, "weight")
    query = item.get("query", {})
    if not isinstance(query, Mapping):
        raise fail("'query' must be a table of name = value", index, "query")
    params = item.get("params", {})
    if not isinstance(params, Mapping):
        raise fail("'params' must be a table of name = value(s)", index, "params")
    for pname, pvalue in params.items():
        if isinstance(pvalue, list) and not pvalue:
            raise fail(f"params.{pname} is an empty list", index, "params")
    raw_capture = item.get("capture", {})
    if not isinstance(raw_capture, Mapping):
        raise fail("'capture' must be a table of name = 'json:a.b' | 'header:X'", index, "capture")
    captures = []
    for var, expr in raw_capture.items():
        try:
            captures.append(parse_capture(str(var), expr))
        except ValueError as exc:
            raise fail(str(exc), index, "capture") from None
    headers = _headers(item.get("headers", {}), lambda m: fail(m, index, "headers"))
    name = item.get("name") or f"{method} {path}"
    return RequestSpec(
        method=method,
        path=path,
        name=str(name),
        query=tuple((str(k), v) for k, v in query.items()),
        headers=headers,
        body=body,
        json=item.get("json"),
        has_json="json" in item,
        weight=float(weight),
        params=dict(params),
        captures=tuple(captures),
        source=source,
        line=locate(index, None),
    )


def parse_capture(var: str, expr: Any) -> Capture:
    """``json:items.0.id`` / ``header:ETag`` / ``status`` -> :class:`Capture`."""
    if not isinstance(expr, str):
        raise ValueError(f"capture {var!r} must be a string like 'json:items.0.id'")
    if expr == "status":
        return Capture(var, "status", ())
    kind, _, rest = expr.partition(":")
    if kind == "json":
        parts = tuple(p for p in rest.removeprefix("$").strip(".").split(".") if p)
        return Capture(var, "json", parts)
    if kind == "header" and rest:
        return Capture(var, "header", (rest,))
    raise ValueError(
        f"capture {var!r}: {expr!r} is not 'json:path.to.value', 'header:NAME' or 'status'"
    )


# -- running ---------------------------------------------------------------------------------


class MissingValue(LaglessError):
    """A placeholder has no value yet (no param, var or capture of that name)."""


class ScenarioState:
    """Fills requests of a scenario: draws list values in turn and remembers captures.

    One per load generator or doctor run. Drawing is deterministic (round-robin per name), so
    two runs of the same scenario make the same requests; :meth:`pick` chooses requests by
    weight with a seeded generator for the same reason.
    """

    def __init__(self, scenario: Scenario | None = None, *, seed: int = 0) -> None:
        self.scenario = scenario or Scenario()
        self.captured: dict[str, Any] = {}
        self._turn: dict[str, int] = {}
        self._rng = random.Random(seed)

    def pick(self, specs: Sequence[RequestSpec] | None = None) -> RequestSpec:
        """A request chosen by weight."""
        pool = list(specs if specs is not None else self.scenario.requests)
        if not pool:
            raise LaglessError("the scenario has no requests")
        return self._rng.choices(pool, weights=[s.weight for s in pool])[0]

    def _draw(self, name: str, value: Any) -> Any:
        if isinstance(value, list):
            turn = self._turn.get(name, 0)
            self._turn[name] = turn + 1
            return value[turn % len(value)]
        return value

    def values_for(self, spec: RequestSpec) -> dict[str, Any]:
        """The value of every name this request can use, drawn for one request."""
        values: dict[str, Any] = {}
        for name, value in self.scenario.params.items():
            values[name] = self._draw(name, value)
        for name, value in spec.params.items():
            values[name] = self._draw(f"{spec.name}\0{name}", value)
        values.update(self.captured)
        return values

    def prepare(self, spec: RequestSpec) -> PreparedRequest:
        """Fill ``spec``'s placeholders; :class:`MissingValue` names one that has no value."""
        values = self.values_for(spec)
        path = _fill(spec.path, values, spec, quote_values=True)
        query = [(k, _fill(str(v), values, spec)) for k, v in spec.query]
        url = path + ("&" if "?" in path else "?") + urlencode(query) if query else path
        headers = [(k, _fill(v, values, spec)) for k, v in (*self.scenario.headers, *spec.headers)]
        body: bytes | None = None
        if spec.has_json:
            body = json.dumps(_fill_json(spec.json, values, spec)).encode()
            if not any(k.lower() == "content-type" for k, _ in headers):
                headers.append(("content-type", "application/json"))
        elif spec.body is not None:
            body = _fill(spec.body, values, spec).encode()
        return PreparedRequest(spec, spec.method, url, tuple(headers), body)

    def record(
        self, spec: RequestSpec, status: int, headers: Mapping[str, str], body: bytes
    ) -> None:
        """Remember what ``spec`` captures from its response (a value that is absent is kept
        from before, so one failed response does not break every later request)."""
        for cap in spec.captures:
            value = cap.extract(status, headers, body)
            if value is not None:
                self.captured[cap.var] = value


def _fill(
    template: str, values: Mapping[str, Any], spec: RequestSpec, *, quote_values: bool = False
) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise MissingValue(
                f"{spec.source}:{spec.line or '?'}: no value for {{{name}}} in {spec.name!r} "
                f"(add it under [params] or capture it from an earlier request)"
            )
        text = str(values[name])
        return quote(text, safe="") if quote_values else text

    return _PLACEHOLDER.sub(sub, template)


def _fill_json(value: Any, values: Mapping[str, Any], spec: RequestSpec) -> Any:
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        return _fill(value, values, spec)
    if isinstance(value, list):
        return [_fill_json(v, values, spec) for v in value]
    if isinstance(value, Mapping):
        return {k: _fill_json(v, values, spec) for k, v in value.items()}
    return value


def iter_placeholders(text: str) -> Iterator[str]:
    """The placeholder names in ``text`` (``/books/{id}`` -> ``id``)."""
    for match in _PLACEHOLDER.finditer(text):
        yield match.group(1)

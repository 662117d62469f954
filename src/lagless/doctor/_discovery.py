"""Route discovery: which requests the doctor can make without being told.

Sources, best first: the OpenAPI schema (it carries parameter examples), then the framework's own
router (Starlette/FastAPI routes and mounts, Flask's ``url_map``, Django's URLconf) for routes the
schema leaves out (an HTML page, static mounts). Every function here is sans-IO: it reads an
already-loaded schema dict or an app object's router, and returns :class:`Endpoint` values.

Static mounts cannot be enumerated through the router, so the files of a static directory are
listed (a few of them); pages' ``<script>``/``<link>`` assets are found later, by the runner,
from the HTML it receives.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

#: Paths that document an API rather than being part of it.
_DOC_PATHS = frozenset(
    {
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/schema",
        "/schema/openapi.json",
        "/schema/openapi.yaml",
        "/schema/swagger",
        "/schema/redoc",
        "/favicon.ico",
    }
)
_HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
_STATIC_FILES_PER_MOUNT = 3
_PARAM = re.compile(r"\{([A-Za-z_]\w*)(?::[^}]*)?\}")


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A route the doctor may exercise. ``path`` is a template with ``{name}`` parameters;
    ``examples`` holds values for parameters (and required query parameters) known from the
    schema; ``query`` the required query parameters."""

    method: str
    path: str
    source: str
    examples: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    query: tuple[str, ...] = ()
    #: Whether the handler is a coroutine function (None: unknown), for detectors that judge
    #: async handlers only (sequential I/O).
    is_async: bool | None = None

    @property
    def params(self) -> list[str]:
        return _PARAM.findall(self.path)


# -- OpenAPI ---------------------------------------------------------------------------------


def _example(param: Mapping[str, Any]) -> Any:
    """A usable value for one OpenAPI parameter, or ``None``: ``example``, ``examples`` (a map
    in OpenAPI 3.0, a list in 3.1's JSON Schema), then the schema's example, default, enum."""
    if "example" in param:
        return param["example"]
    examples = param.get("examples")
    if isinstance(examples, Mapping):
        for item in examples.values():
            if isinstance(item, Mapping) and "value" in item:
                return item["value"]
    if isinstance(examples, list) and examples:
        return examples[0]
    schema = param.get("schema")
    if isinstance(schema, Mapping):
        if "example" in schema:
            return schema["example"]
        sx = schema.get("examples")
        if isinstance(sx, list) and sx:
            return sx[0]
        if "default" in schema:
            return schema["default"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
    return None


def from_openapi(schema: Mapping[str, Any]) -> list[Endpoint]:
    """Endpoints of an OpenAPI 3.x document (``servers`` prefixes are ignored: the doctor
    calls the app it was given)."""
    out: list[Endpoint] = []
    paths = schema.get("paths")
    if not isinstance(paths, Mapping):
        return out
    for path, item in paths.items():
        if not isinstance(item, Mapping) or not isinstance(path, str) or path in _DOC_PATHS:
            continue
        shared = [p for p in item.get("parameters", ()) if isinstance(p, Mapping)]
        for method in _HTTP_METHODS:
            op = item.get(method)
            if not isinstance(op, Mapping):
                continue
            params = {(p.get("in"), p.get("name")): p for p in shared}
            for p in op.get("parameters", ()):
                if isinstance(p, Mapping):
                    params[(p.get("in"), p.get("name"))] = p
            examples: dict[str, Any] = {}
            query: list[str] = []
            for (where, name), p in params.items():
                if not isinstance(name, str) or where not in ("path", "query"):
                    continue
                value = _example(p)
                if value is not None:
                    examples[name] = value
                if where == "query" and p.get("required"):
                    query.append(name)
            out.append(Endpoint(method.upper(), path, "openapi", examples, tuple(query)))
    return out


# -- framework routers -----------------------------------------------------------------------


def _static_files(directory: Any, prefix: str) -> list[Endpoint]:
    if directory is None:
        return []
    folder = Path(str(directory))
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    # Prefer what a page loads first: scripts and styles.
    files.sort(key=lambda p: (p.suffix not in (".js", ".css"), str(p)))
    return [
        Endpoint("GET", f"{prefix.rstrip('/')}/{p.relative_to(folder).as_posix()}", "static")
        for p in files[:_STATIC_FILES_PER_MOUNT]
    ]


def from_starlette(app: Any) -> list[Endpoint]:
    """Routes of a Starlette or FastAPI app (and Mounts inside it)."""
    return list(_walk_starlette(getattr(app, "routes", ()), ""))


def _walk_starlette(routes: Iterable[Any], prefix: str) -> Iterable[Endpoint]:
    for route in routes:
        kind = type(route).__name__
        included = getattr(route, "original_router", None)
        if included is not None:
            # FastAPI >= 0.16x keeps include_router() lazy: the router and its prefix.
            extra = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            yield from _walk_starlette(getattr(included, "routes", ()), prefix + str(extra))
            continue
        path = getattr(route, "path_format", None) or getattr(route, "path", "")
        if kind == "Mount":
            path = str(getattr(route, "path", ""))  # path_format would add "{path}"
            inner = getattr(route, "routes", None)
            sub_app = getattr(route, "app", None)
            if inner:
                yield from _walk_starlette(inner, prefix + path)
            elif type(sub_app).__name__ == "StaticFiles":
                yield from _static_files(getattr(sub_app, "directory", None), prefix + path)
            continue
        methods = getattr(route, "methods", None)
        if not methods or not isinstance(path, str):
            continue  # websocket routes, hosts
        full = prefix + path
        if full in _DOC_PATHS:
            continue
        endpoint = getattr(route, "endpoint", None)
        is_async = inspect.iscoroutinefunction(endpoint) if endpoint is not None else None
        for method in sorted(methods):
            if method != "HEAD":
                yield Endpoint(method, full, "router", is_async=is_async)


def from_litestar(app: Any) -> list[Endpoint]:
    """Routes of a Litestar app, without the ones Litestar itself adds (the OpenAPI schema and
    its Swagger/ReDoc/RapiDoc/Elements pages under ``/schema``): their handlers live in
    ``litestar.*`` modules, and measuring them would bury the app's own routes."""
    out: list[Endpoint] = []
    for route in getattr(app, "routes", ()):
        path = getattr(route, "path", None)
        if not isinstance(path, str) or path in _DOC_PATHS:
            continue
        for handler in getattr(route, "route_handlers", ()):
            fn = getattr(handler, "fn", None)
            module = getattr(fn, "__module__", None) or ""
            if module == "litestar" or module.startswith("litestar."):
                continue
            is_async = inspect.iscoroutinefunction(fn) if fn is not None else None
            for method in sorted(getattr(handler, "http_methods", ()) or ()):
                if method not in ("HEAD", "OPTIONS"):
                    out.append(Endpoint(method, path, "router", is_async=is_async))
    return out


_FLASK_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def from_flask(app: Any) -> list[Endpoint]:
    """Rules of a Flask app's ``url_map``; the static endpoint lists a few files."""
    out: list[Endpoint] = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            out.extend(
                _static_files(getattr(app, "static_folder", None), app.static_url_path or "/static")
            )
            continue
        path = _FLASK_ARG.sub(lambda m: "{" + m.group(1) + "}", rule.rule)
        for method in sorted(rule.methods or ()):
            if method not in ("HEAD", "OPTIONS"):
                out.append(Endpoint(method, path, "router", is_async=False))
    return out


_DJANGO_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def _django_route(pattern: Any) -> str | None:
    """A ``path()`` pattern as a ``{name}`` template; a ``re_path`` when it is a plain sequence
    of literals and named groups; ``None`` otherwise."""
    route = getattr(pattern, "_route", None)
    if isinstance(route, str):
        return _DJANGO_ARG.sub(lambda m: "{" + m.group(1) + "}", route)
    regex = getattr(pattern, "_regex", None)
    if isinstance(regex, str):
        text = _REGEX_GROUP.sub(lambda m: "{" + m.group(1) + "}", regex).lstrip("^").rstrip("$")
        if re.search(r"[\\()\[\]*+?|]", text):
            return None
        return text
    return None


def from_django(patterns: Iterable[Any], prefix: str = "/") -> list[Endpoint]:
    """GET endpoints of a Django URLconf (``get_resolver().url_patterns``). Django views do not
    declare their methods in the URLconf, so only GET is assumed; the admin is skipped."""
    out: list[Endpoint] = []
    for entry in patterns:
        route = _django_route(entry.pattern)
        if route is None:
            continue
        if hasattr(entry, "url_patterns"):
            if (
                getattr(entry, "app_name", None) == "admin"
                or getattr(entry, "namespace", None) == "admin"
            ):
                continue
            out.extend(from_django(entry.url_patterns, prefix + route))
            continue
        out.append(Endpoint("GET", prefix + route, "router"))
    return out


def merge(primary: list[Endpoint], extra: list[Endpoint]) -> list[Endpoint]:
    """``primary`` plus the endpoints of ``extra`` it does not already have."""
    seen = {(e.method, _norm(e.path)) for e in primary}
    out = list(primary)
    for e in extra:
        key = (e.method, _norm(e.path))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _norm(path: str) -> str:
    return _PARAM.sub("{}", path).rstrip("/") or "/"


# -- assets referenced by pages ----------------------------------------------------------------


class _AssetParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.assets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        url: str | None = None
        if tag in ("script", "img"):
            url = a.get("src")
        elif tag == "link" and (a.get("rel") or "").lower() in ("stylesheet", "preload", "icon"):
            url = a.get("href")
        if url and url.startswith("/") and not url.startswith("//"):
            self.assets.append(url.split("#", 1)[0])


def page_assets(html: str, limit: int = 8) -> list[str]:
    """Same-origin script, stylesheet and image paths an HTML page loads (at most ``limit``)."""
    parser = _AssetParser()
    try:
        parser.feed(html)
    except Exception:  # a page that is not really HTML has no assets to find
        return []
    seen: list[str] = []
    for url in parser.assets:
        if url not in seen:
            seen.append(url)
    return seen[:limit]

"""What the doctor examines: an app loaded in this process, a Django project, or a server by URL.

In-process targets (``module:app``, ``--django``, the bundled example) are instrumented with
:func:`lagless.instrument` and driven through httpx's ASGI/WSGI transports, so every span is
seen. A URL target is a server running elsewhere; lagless there adds its ``Server-Timing``
header, and that header is all the doctor reads back (see :mod:`lagless.doctor._client`): no
debug endpoint is opened on anyone's server. Findings on a URL target are therefore the
response-level ones (HTTP caching, payload size and compression, static assets) plus per-route
latency; statement-level findings need an in-process target, or the server's ``trace_file``
export fed to ``lagless analyze``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from lagless.doctor._discovery import (
    Endpoint,
    from_django,
    from_flask,
    from_litestar,
    from_openapi,
    from_starlette,
    merge,
)
from lagless.errors import LaglessError


class TargetError(LaglessError):
    """The doctor cannot load or reach what it was asked to examine."""


@dataclasses.dataclass
class Target:
    """A loaded target. ``app`` is what requests go to (instrumented for in-process targets)."""

    label: str
    kind: str  # "asgi" | "wsgi" | "url"
    app: Any = None
    original: Any = None
    framework: str | None = None
    base_url: str = "http://localhost"
    #: Router endpoints found without any request (OpenAPI added later by the runner).
    router_endpoints: list[Endpoint] = dataclasses.field(default_factory=list)
    #: A callable returning the app's OpenAPI document without HTTP (FastAPI's ``app.openapi``).
    openapi: Callable[[], Any] | None = None
    #: Database URLs the EXPLAIN runner may connect to (SQLAlchemy URLs of the app's engines).
    database_urls: list[str] = dataclasses.field(default_factory=list)
    closers: list[Callable[[], Any]] = dataclasses.field(default_factory=list)

    @property
    def in_process(self) -> bool:
        return self.kind != "url"


def _framework_of(app: Any) -> str | None:
    for cls in type(app).__mro__:
        root = cls.__module__.split(".")[0]
        if root in ("starlette", "fastapi") and cls.__name__ in ("Starlette", "FastAPI"):
            return "starlette"
        if root == "flask" and cls.__name__ == "Flask":
            return "flask"
        if root == "litestar" and cls.__name__ == "Litestar":
            return "litestar"
    return None


def _is_asgi(app: Any) -> bool:
    if inspect.iscoroutinefunction(app):
        return True
    if not callable(app):
        return False
    return inspect.iscoroutinefunction(type(app).__call__)


def import_app(spec: str) -> Any:
    """``package.module:attr`` (or ``:factory()``, called with no arguments) -> the object.
    The working directory is importable, as with uvicorn."""
    if "://" in spec:  # "ftp://...", "htp://...": a URL, but not one lagless can load
        raise TargetError(f"expected TARGET as 'module:app' or an http:// URL, got {spec!r}")
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise TargetError(f"expected TARGET as 'module:app' or a URL, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"cannot import {module_name!r}: {exc}") from None
    call = attr.endswith("()")
    obj: Any = module
    for part in attr.removesuffix("()").split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(
                f"{module_name!r} has no attribute {attr.removesuffix('()')!r}"
            ) from None
    if call:
        obj = obj()
    return obj


def _sqlalchemy_urls(*objects: Any) -> list[str]:
    """Database URLs of SQLAlchemy engines reachable from ``objects`` (an app's state)."""
    urls: list[str] = []
    for obj in objects:
        for value in list(vars(obj).values()) if hasattr(obj, "__dict__") else []:
            engine = getattr(value, "engine", value)
            url = getattr(engine, "url", None)
            if url is not None and hasattr(url, "render_as_string"):
                text = url.render_as_string(hide_password=False)
                if text not in urls:
                    urls.append(text)
    return urls


def app_target(app: Any, label: str) -> Target:
    """Wrap an ASGI or WSGI application object (FastAPI, Starlette, Flask, Litestar, any)."""
    import lagless

    framework = _framework_of(app)
    if framework == "starlette":
        endpoints = from_starlette(app)
    elif framework == "flask":
        endpoints = from_flask(app)
    elif framework == "litestar":
        endpoints = from_litestar(app)
    else:
        endpoints = []
    openapi = getattr(app, "openapi", None)
    state = getattr(app, "state", None)
    db_urls = _sqlalchemy_urls(getattr(state, "_state", state)) if state is not None else []
    kind = "asgi" if framework in ("starlette", "litestar") or _is_asgi(app) else "wsgi"
    instrumented = lagless.instrument(app)
    # Flask is instrumented by wrapping ``wsgi_app``; the Flask object itself stays callable.
    return Target(
        label=label,
        kind=kind,
        app=instrumented,
        original=app,
        framework=framework,
        router_endpoints=endpoints,
        openapi=openapi if callable(openapi) else None,
        database_urls=db_urls,
    )


def module_target(spec: str) -> Target:
    app = import_app(spec)
    if not callable(app):
        raise TargetError(f"{spec!r} is not an ASGI or WSGI application")
    return app_target(app, spec)


def example_target(mode: str, db_url: str | None = None) -> Target:
    from lagless.example import create_app

    app = create_app(mode, db_url=db_url)
    target = app_target(app, f"bundled example ({mode})")
    db = app.state.database
    target.database_urls = [db.sync_engine.url.render_as_string(hide_password=False)]
    return target


def django_target(settings_module: str) -> Target:
    """A Django project by its settings module, served through its WSGI handler with lagless's
    middleware first in ``MIDDLEWARE`` (added for this run if the project has not)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        import django
        from django.conf import settings
    except ImportError:
        raise TargetError(
            "--django needs Django installed: pip install 'lagless[django]'"
        ) from None
    try:
        middleware = list(settings.MIDDLEWARE)
    except Exception as exc:
        raise TargetError(f"cannot load Django settings {settings_module!r}: {exc}") from None
    name = "lagless.django.LaglessMiddleware"
    use_middleware = importlib.util.find_spec("lagless.django") is not None
    if use_middleware and name not in middleware:
        settings.MIDDLEWARE = [name, *middleware]
    django.setup()
    from django.core.wsgi import get_wsgi_application
    from django.urls import get_resolver

    handler: Any = get_wsgi_application()
    endpoints = from_django(get_resolver().url_patterns)
    import lagless

    lagless.install_integrations(
        lagless.get_runtime().config.integrations,
        exclude=lagless.get_runtime().config.disabled_integrations,
    )
    if not use_middleware:
        from lagless.integrations.wsgi import LaglessWSGIMiddleware

        def resolve(environ: dict[str, Any]) -> str | None:
            from django.urls import Resolver404
            from django.urls import resolve as django_resolve

            try:
                match = django_resolve(environ.get("PATH_INFO", "/"))
            except Resolver404:
                return None
            return "/" + str(match.route).lstrip("^") if match.route else None

        handler = LaglessWSGIMiddleware(handler, route_resolver=resolve, framework="django")
    urls = []
    for alias in settings.DATABASES:
        db = settings.DATABASES[alias]
        if db.get("ENGINE", "").endswith("sqlite3") and db.get("NAME"):
            urls.append(f"sqlite:///{db['NAME']}")
    return Target(
        label=f"Django project ({settings_module})",
        kind="wsgi",
        app=handler,
        original=handler,
        framework="django",
        router_endpoints=endpoints,
        database_urls=urls,
    )


def url_target(url: str) -> Target:
    from urllib.parse import urlsplit

    # Checked here so a typo is one clear line, not a traceback from the HTTP client.
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise TargetError(f"bad URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"bad URL {url!r}: expected http://host[:port]")
    return Target(label=url, kind="url", base_url=url.rstrip("/"))


def merged_endpoints(target: Target, schema: Any) -> list[Endpoint]:
    """OpenAPI endpoints first (they carry examples), then the router's extra ones."""
    primary = from_openapi(schema) if isinstance(schema, dict) else []
    return merge(primary, target.router_endpoints)

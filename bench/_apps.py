"""The three apps the overhead benchmark compares (Starlette, Flask, Django), each built in
three arms (bare, lagless, OpenTelemetry), and the probes that call them as raw ASGI/WSGI
callables, the way a server would, without a test client's own cost in the measurement."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import inspect
import io
import sqlite3
import sys
import types
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

import lagless
from lagless.integrations import install_integrations

SQL = "SELECT id, name FROM items WHERE id = ?"
PATH = "/items/7"

#: What the run had to work around (a missing library, a fallback), printed at the end.
notes: list[str] = []


# -- the apps -------------------------------------------------------------------------------------


def make_db(wrap: Callable[[Any], Any] | None = None, *, plain: bool = False) -> Any:
    """An in-memory database of 100 items. ``sqlite3.connect`` is looked up at call time, so a
    connection made after lagless's sqlite3 integration is installed is a traced one, unless
    ``plain`` asks for the unpatched ``connect``."""
    connect = inspect.unwrap(sqlite3.connect) if plain else sqlite3.connect
    conn = connect(":memory:", check_same_thread=False)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(100)])
    conn.commit()
    return wrap(conn) if wrap else conn


def fetch_item(conn: Any, item_id: int) -> dict[str, Any]:
    # Through a cursor: OpenTelemetry's dbapi proxy traces cursors, not the connection's
    # ``execute`` shortcut, and the comparison must trace the same statement in both.
    cur = conn.cursor()
    cur.execute(SQL, (item_id,))
    row = cur.fetchone()
    return {"id": row[0], "name": row[1]}


def starlette_app(conn: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def item(request: Any) -> Any:
        return JSONResponse(fetch_item(conn, request.path_params["item_id"]))

    return Starlette(routes=[Route("/items/{item_id:int}", item)])


def flask_app(conn: Any, name: str) -> Any:
    from flask import Flask

    app = Flask(f"bench_{name}")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return fetch_item(conn, item_id)

    return app


# -- the floor: the least a pure-Python middleware can do for what lagless does -----------------

_floor_trace: contextvars.ContextVar[_FloorTrace | None] = contextvars.ContextVar(
    "bench_floor_trace", default=None
)
_floor_ring: collections.deque[_FloorTrace] = collections.deque(maxlen=1000)
_plain_execute = sqlite3.Cursor.execute
_plain_cursor = sqlite3.Connection.cursor


class _FloorTrace:
    __slots__ = ("spans", "start")

    def __init__(self) -> None:
        self.spans: list[tuple[str, int, int]] = []
        self.start = perf_counter_ns()


class _FloorCursor(sqlite3.Cursor):
    def execute(self, sql: str, params: Any = ()) -> Any:  # type: ignore[override]
        trace = _floor_trace.get()
        if trace is None:
            return _plain_execute(self, sql, params)
        start = perf_counter_ns()
        result = _plain_execute(self, sql, params)
        trace.spans.append((sql, start, perf_counter_ns() - start))
        return result


class _FloorConnection(sqlite3.Connection):
    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        return _plain_cursor(self, _FloorCursor)


class _FloorMiddleware:
    """The floor under lagless's cost: what issue 2 asks of a request done with nothing else
    (no route, no handler span, no parameter fingerprint, no row count, no guard against its
    own errors, no settings): a trace object made current, the query timed into it, a
    Server-Timing header with db and total, the trace kept in a ring. What this adds is what
    any pure-Python middleware pays for those four things on this machine."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace = _FloorTrace()
        token = _floor_trace.set(trace)

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                db = sum(span[2] for span in trace.spans)
                total = perf_counter_ns() - trace.start
                value = b"db;dur=%.2f, total;dur=%.2f" % (db / 1e6, total / 1e6)
                headers = [*message.get("headers", ()), (b"server-timing", value)]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            _floor_trace.reset(token)
            _floor_ring.append(trace)


def floor_app() -> Any:
    """The Starlette bench app behind :class:`_FloorMiddleware`, on a connection whose
    cursors time their statements the floor's way."""
    conn = inspect.unwrap(sqlite3.connect)(
        ":memory:", check_same_thread=False, factory=_FloorConnection
    )
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(100)])
    conn.commit()
    return _FloorMiddleware(starlette_app(conn))


def check_floor_arm(probe: Any) -> None:
    """The floor arm must do its four things, or it would be a floor under nothing."""
    _floor_ring.clear()
    probe(1)
    if not probe.header(b"server-timing") or not _floor_ring or not _floor_ring[-1].spans:
        raise SystemExit("the floor arm recorded no span or sent no Server-Timing header")


def reference_apps() -> dict[str, Any]:
    """The machine's yardstick, from the issue's reference figure "measured on this kind of
    machine": a bare Starlette request (a plain-text endpoint, no database; ~8 µs there).
    Measured in the same alternation as the arms, it turns the issue's absolute µs budget into
    this run's µs: these shared machines run the same code 2-3x slower or faster from one hour
    to the next. (The issue's other yardstick, one pure-ASGI timing middleware at ~1.5 µs, was
    tried and dropped: its paired difference is below this machine's noise floor and came out
    anywhere from -0.8 to +3.8 µs.)"""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> Any:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/items/{item_id:int}", hello)])
    return {"ref-bare": app}


_django_conns: dict[str, Any] = {}


def _django_view(request: Any, item_id: int) -> Any:
    from django.http import JsonResponse

    return JsonResponse(fetch_item(_django_conns[request.META["bench.arm"]], item_id))


def _django_setup() -> None:
    import django
    from django.conf import settings

    if settings.configured:
        return
    from django.urls import path

    urls = types.ModuleType("lagless_bench_urls")
    urls.urlpatterns = [path("items/<int:item_id>", _django_view)]  # type: ignore[attr-defined]
    sys.modules[urls.__name__] = urls
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=urls.__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()


def django_app(conn: Any, arm: str, *, lagless_on: bool) -> Any:
    """Django's WSGI handler with ``MIDDLEWARE = []`` or ``["lagless.django.LaglessMiddleware"]``.
    The handler reads the setting once, when built, so the arms coexist in one process."""
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    _django_setup()
    _django_conns[arm] = conn
    settings.MIDDLEWARE = ["lagless.django.LaglessMiddleware"] if lagless_on else []
    try:
        handler: Any = WSGIHandler()
    except ImportError as exc:
        settings.MIDDLEWARE = []
        from lagless.integrations.wsgi import LaglessWSGIMiddleware

        note(f"Django: lagless.django.LaglessMiddleware unavailable ({exc}); generic WSGI used")
        handler = LaglessWSGIMiddleware(WSGIHandler())
    finally:
        settings.MIDDLEWARE = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        environ["bench.arm"] = arm
        return handler(environ, start_response)

    return app


def note(text: str) -> None:
    if text not in notes:
        notes.append(text)


def instrument(app: Any, kind: str) -> Any:
    """``lagless.instrument(app)``; the generic middleware (noted) when the framework's own
    integration is not importable."""
    try:
        return lagless.instrument(app)
    except ImportError as exc:
        note(f"{kind}: framework integration unavailable ({exc}); generic middleware used")
    if kind == "starlette":
        from lagless.integrations.asgi import LaglessMiddleware

        return LaglessMiddleware(app)
    from lagless.integrations.wsgi import LaglessWSGIMiddleware

    return LaglessWSGIMiddleware(app)


def build_arms(kind: str, arm: str, provider: Any) -> Any:
    """The app for one framework and arm. The lagless arm installs lagless's integrations
    first, so its connection is a traced one; the others use plain connections.
    ``lagless-nodb`` is the lagless arm with an untraced connection (to tell apart what the
    middleware costs and what the db span costs)."""
    if arm in ("lagless", "lagless-nodb"):
        install_integrations(["sqlite3"])
        conn = make_db() if arm == "lagless" else _plain_db()
        if kind == "starlette":
            return instrument(starlette_app(conn), kind)
        if kind == "flask":
            return instrument(flask_app(conn, arm), kind)
        return django_app(conn, arm, lagless_on=True)
    if arm == "otel":
        from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

        def wrap(c: Any) -> Any:
            return SQLite3Instrumentor.instrument_connection(c, tracer_provider=provider)

        conn = _plain_db(wrap)
        if kind == "starlette":
            from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as OtelASGI

            return OtelASGI(starlette_app(conn), tracer_provider=provider)
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as OtelWSGI

        if kind == "flask":
            app = flask_app(conn, arm)
            app.wsgi_app = OtelWSGI(app.wsgi_app, tracer_provider=provider)
            return app
        return OtelWSGI(django_app(conn, arm, lagless_on=False), tracer_provider=provider)
    conn = _plain_db()
    if kind == "starlette":
        return starlette_app(conn)
    if kind == "flask":
        return flask_app(conn, arm)
    return django_app(conn, arm, lagless_on=False)


def _plain_db(wrap: Callable[[Any], Any] | None = None) -> Any:
    """A connection lagless does not trace, even while its sqlite3 integration is installed."""
    conn = make_db(wrap, plain=True)
    inner = getattr(conn, "__wrapped__", conn)
    assert type(inner) is sqlite3.Connection, type(inner)
    return conn


# -- in-process drivers ---------------------------------------------------------------------------

_SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": PATH,
    "raw_path": PATH.encode(),
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"bench"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


class ASGIProbe:
    """Calls an ASGI app directly; keeps the last response's status and headers."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []

    async def _receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = message.get("headers", [])

    async def _run(self, n: int) -> None:
        app, receive, send = self.app, self._receive, self._send
        for _ in range(n):
            await app(dict(_SCOPE), receive, send)

    def __call__(self, n: int) -> int:
        start = perf_counter_ns()
        self.loop.run_until_complete(self._run(n))
        return perf_counter_ns() - start

    async def once(self) -> int:
        """One request, timed on its own (for call-by-call alternation); run on ``loop``."""
        scope = dict(_SCOPE)
        start = perf_counter_ns()
        await self.app(scope, self._receive, self._send)
        return perf_counter_ns() - start

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


_ENVIRON = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": PATH,
    "QUERY_STRING": "",
    "SERVER_NAME": "bench",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "HTTP_HOST": "bench",
    "HTTP_ACCEPT": "*/*",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.input": io.BytesIO(b""),
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": False,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


class WSGIProbe:
    """Calls a WSGI app directly, consuming and closing its body as a server would."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def _start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        self.status = status
        self.headers = headers
        return self._write

    def _write(self, data: bytes) -> None:
        return None

    def __call__(self, n: int) -> int:
        app, start_response, environ = self.app, self._start_response, _ENVIRON
        start = perf_counter_ns()
        for _ in range(n):
            body = app(dict(environ), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return perf_counter_ns() - start

    def once(self) -> int:
        """One request, timed on its own (for call-by-call alternation)."""
        environ = dict(_ENVIRON)
        start = perf_counter_ns()
        body = self.app(environ, self._start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
        return perf_counter_ns() - start

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


def check_lagless_arm(probe: Any, kind: str) -> None:
    """The lagless arm must really trace: a Server-Timing header and a trace with a db span."""
    lagless.get_runtime().clear()
    probe(1)
    timing = probe.header(b"server-timing" if isinstance(probe, ASGIProbe) else "server-timing")
    traces = lagless.recent_traces()
    if not timing or not traces or not any(s.kind == "db" for s in traces[-1].spans):
        raise SystemExit(f"{kind}: the lagless arm did not record (timing={timing!r})")

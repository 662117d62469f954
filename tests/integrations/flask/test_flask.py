"""Flask through its own test client: route templates, hooks as middleware spans, handler span,
Server-Timing, the extension, and concurrency."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import lagless
from lagless._runtime import Runtime
from lagless._trace import Trace, _current_trace
from lagless.integrations import flask as flask_mod
from lagless.integrations.flask import Lagless, flask_route_template, instrument_flask
from lagless.integrations.wsgi import LaglessWSGIMiddleware

flask = pytest.importorskip("flask")


def before_auth() -> None:
    flask.g.user = "ann"


def after_header(response: Any) -> Any:
    response.headers["X-After"] = "1"
    return response


def teardown_noop(exc: BaseException | None) -> None:
    flask.g.pop("user", None)


def make_app() -> Any:
    app = flask.Flask("lagless_flask_test")
    app.before_request(before_auth)
    app.after_request(after_header)
    app.teardown_request(teardown_noop)

    @app.get("/users/<int:id>")
    def get_user(id: int) -> dict[str, Any]:
        with lagless.span("load-user", kind="db"):
            pass
        return {"id": id, "user": flask.g.user}

    @app.get("/files/<path:rest>")
    def get_file(rest: str) -> str:
        return rest

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("view exploded")

    bp = flask.Blueprint("admin", __name__, url_prefix="/admin")

    @bp.before_request
    def admin_only() -> Any:
        if flask.request.args.get("deny"):
            return "denied", 403
        return None

    @bp.get("/stats/<name>")
    def stats(name: str) -> str:
        return name

    app.register_blueprint(bp)
    return app


def get(client: Any, url: str) -> Any:
    response = client.get(url)
    response.get_data()  # consume the body, as a server does; the trace ends with it
    response.close()
    return response


def only(rt: Runtime) -> Trace:
    traces = rt.recent_traces()
    assert len(traces) == 1, traces
    return traces[0]


@pytest.mark.parametrize(
    ("rule", "template"),
    [
        ("/users/<int:id>", "/users/{id}"),
        ("/files/<path:rest>", "/files/{rest}"),
        ("/<lang>/page", "/{lang}/page"),
        ("/x/<any(a, b):kind>/<float:v>", "/x/{kind}/{v}"),
        ("/static", "/static"),
    ],
)
def test_route_template_normalisation(rule: str, template: str) -> None:
    assert flask_route_template(rule) == template


def test_instrument_returns_same_app_wraps_wsgi_app_once(fresh_runtime: Runtime) -> None:
    app = make_app()
    original = app.wsgi_app
    assert lagless.instrument(app, integrations=False) is app
    assert isinstance(app.wsgi_app, LaglessWSGIMiddleware)
    assert app.wsgi_app.app == original
    wrapped = app.wsgi_app
    assert lagless.instrument(app, integrations=False) is app
    assert instrument_flask(app, runtime=fresh_runtime) is app
    assert app.wsgi_app is wrapped


def test_extension_then_instrument_wraps_once(fresh_runtime: Runtime) -> None:
    app = make_app()
    Lagless(app, integrations=False)
    wrapped = app.wsgi_app
    assert lagless.instrument(app, integrations=False) is app
    assert app.wsgi_app is wrapped
    response = get(app.test_client(), "/users/5")
    assert len(response.headers.getlist("Server-Timing")) == 1
    assert only(fresh_runtime).route == "/users/{id}"


def test_route_spans_and_server_timing(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    response = get(app.test_client(), "/users/42")
    assert response.status_code == 200
    assert response.get_json() == {"id": 42, "user": "ann"}
    assert response.headers["X-After"] == "1"
    timing = response.headers["Server-Timing"]
    assert "db;dur=" in timing and "total;dur=" in timing
    trace = only(fresh_runtime)
    assert (trace.route, trace.status, trace.attrs["framework"]) == ("/users/{id}", 200, "flask")
    assert trace.response_bytes == len(response.get_data())
    names = [(s.kind, s.name) for s in trace.ordered_spans()]
    mod = __name__
    assert names == [
        ("middleware", f"{mod}.before_auth"),
        ("handler", f"{mod}.make_app.<locals>.get_user"),
        ("db", "load-user"),
        ("middleware", f"{mod}.after_header"),
        ("middleware", f"{mod}.teardown_noop"),
    ]
    handler = next(s for s in trace.spans if s.kind == "handler")
    db = next(s for s in trace.spans if s.kind == "db")
    assert handler.start_ns <= db.start_ns and db.end_ns <= handler.end_ns


def test_unmatched_route_is_none(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    response = get(app.test_client(), "/nowhere/1")
    assert response.status_code == 404
    trace = only(fresh_runtime)
    assert trace.route is None and trace.route_or_path == "<unmatched>"
    assert trace.status == 404
    assert not trace.spans_of("handler")


def test_blueprint_hook_short_circuit_keeps_route(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    response = get(app.test_client(), "/admin/stats/cpu?deny=1")
    assert response.status_code == 403
    trace = only(fresh_runtime)
    assert trace.route == "/admin/stats/{name}"
    assert not trace.spans_of("handler")  # the view never ran
    hooks = [s.name.rsplit(".", 1)[-1] for s in trace.spans_of("middleware")]
    assert hooks == ["before_auth", "admin_only", "after_header", "teardown_noop"]


def test_hooks_registered_after_instrument_are_timed(fresh_runtime: Runtime) -> None:
    app = flask.Flask("late_hooks")

    @app.get("/")
    def index() -> str:
        return "ok"

    lagless.instrument(app, integrations=False)

    @app.before_request
    def late_before() -> None:
        return None

    @app.before_request
    async def late_async_before() -> None:
        return None

    get(app.test_client(), "/")
    names = [s.name.rsplit(".", 1)[-1] for s in only(fresh_runtime).spans_of("middleware")]
    assert names == ["late_before", "late_async_before"]


def test_middleware_timing_setting_switches_hook_spans(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    client = app.test_client()
    get(client, "/users/1")
    fresh_runtime.configure(middleware_timing=False)
    get(client, "/users/2")
    on, off = fresh_runtime.recent_traces()
    assert len(on.spans_of("middleware")) == 3
    assert off.spans_of("middleware") == []
    assert len(off.spans_of("handler")) == 1


def test_view_exception_gives_traced_500(fresh_runtime: Runtime) -> None:
    app = lagless.instrument(make_app(), integrations=False)
    response = get(app.test_client(), "/boom")
    assert response.status_code == 500
    trace = only(fresh_runtime)
    assert trace.status == 500 and trace.route == "/boom"
    (handler,) = trace.spans_of("handler")
    assert handler.get("error") == "RuntimeError: view exploded"
    # teardown hooks still ran and were timed
    assert trace.spans_of("middleware")[-1].name.endswith("teardown_noop")


def test_streamed_response_is_timed_to_its_end(fresh_runtime: Runtime) -> None:
    app = flask.Flask("streaming")

    @app.get("/stream")
    def stream() -> Any:
        @flask.stream_with_context
        def body() -> Any:
            for i in range(3):
                with lagless.span(f"chunk-{i}"):
                    pass
                yield f"{i}\n"

        return flask.Response(body())

    lagless.instrument(app, integrations=False)
    response = app.test_client().get("/stream")
    assert fresh_runtime.recent_traces() == []  # headers sent, body still to come
    assert response.get_data() == b"0\n1\n2\n"
    trace = only(fresh_runtime)
    assert [s.name for s in trace.spans_of("custom")] == ["chunk-0", "chunk-1", "chunk-2"]
    assert trace.response_bytes == 6
    response.close()


def test_extension_patterns(fresh_runtime: Runtime) -> None:
    app = make_app()
    ext = Lagless(app, integrations=False)
    assert isinstance(app.wsgi_app, LaglessWSGIMiddleware)
    get(app.test_client(), "/users/5")
    assert only(fresh_runtime).route == "/users/{id}"

    # application-factory style, with settings
    factory_ext = Lagless(integrations=False, server_timing=False)

    def create_app() -> Any:
        new = make_app()
        factory_ext.init_app(new)
        return new

    other = create_app()
    response = get(other.test_client(), "/users/6")
    assert "Server-Timing" not in response.headers
    assert fresh_runtime.config.server_timing is False
    assert ext is not factory_ext


def test_extension_installs_driver_integrations(
    fresh_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, Any]] = []
    monkeypatch.setattr(
        flask_mod,
        "install_integrations",
        lambda names, exclude=(): calls.append((names, tuple(exclude))) or [],
    )
    fresh_runtime.configure(integrations=["sqlite3"], disabled_integrations=["redis"])
    Lagless(make_app())
    assert calls == [(("sqlite3",), ("redis",))]


def test_internal_error_in_route_lookup_is_logged_not_raised(
    fresh_runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(rule: str) -> str:
        raise RuntimeError("bug in lagless")

    monkeypatch.setattr(flask_mod, "flask_route_template", broken)
    app = lagless.instrument(make_app(), integrations=False)
    with caplog.at_level(logging.ERROR, logger="lagless"):
        response = get(app.test_client(), "/users/7")
    assert response.status_code == 200
    assert response.get_json() == {"id": 7, "user": "ann"}
    assert "internal error in flask:route" in caplog.text
    assert only(fresh_runtime).route is None


def test_concurrent_requests_never_mix_spans(fresh_runtime: Runtime) -> None:
    barrier = threading.Barrier(2, timeout=10)
    app = flask.Flask("concurrent")

    @app.get("/work/<name>")
    def work(name: str) -> str:
        with lagless.span(f"before-{name}"):
            barrier.wait()
        with lagless.span(f"after-{name}"):
            barrier.wait()
        return name

    lagless.instrument(app, integrations=False)
    errors: list[BaseException] = []

    def call(name: str) -> None:
        try:
            assert get(app.test_client(), f"/work/{name}").get_data() == name.encode()
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    traces = fresh_runtime.recent_traces()
    assert sorted(t.path for t in traces) == ["/work/a", "/work/b"]
    for trace in traces:
        name = trace.path.rsplit("/", 1)[-1]
        assert [s.name for s in trace.spans_of("custom")] == [f"before-{name}", f"after-{name}"]


def test_trace_ends_without_the_body_being_read(fresh_runtime: Runtime) -> None:
    """Werkzeug's test client reads a body only when the test does: a test that checks the
    status alone must still produce its trace (the pytest plugin depends on it)."""
    app = flask.Flask("lagless_unread_body")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/stream")
    def stream() -> Any:
        def chunks() -> Iterator[bytes]:
            yield b"a"
            yield b"bc"

        return app.response_class(chunks())

    lagless.instrument(app, integrations=False)
    client = app.test_client()
    response = client.get("/items/7")
    assert response.status_code == 200
    [trace] = fresh_runtime.recent_traces()
    assert trace.route == "/items/{item_id}"
    assert trace.response_bytes == len(response.get_data())
    assert client.head("/items/7").status_code == 200
    assert fresh_runtime.recent_traces()[-1].response_bytes == 0
    # A streamed body is still timed to its end: no trace until it is read.
    streamed = client.get("/stream")
    assert len(fresh_runtime.recent_traces()) == 2
    assert streamed.get_data() == b"abc"
    assert fresh_runtime.recent_traces()[-1].response_bytes == 3


def test_body_size_of_every_fully_built_body_shape(fresh_runtime: Runtime) -> None:
    """The size of a fully built body is read straight off ``set_data``'s one bytes chunk;
    other shapes (a list of several chunks, str chunks) take werkzeug's own count."""
    app = flask.Flask("lagless_body_shapes")

    @app.get("/one")
    def one() -> Any:
        return {"id": 1}

    @app.get("/chunks")
    def chunks() -> Any:
        return app.response_class([b"ab", b"cde"])

    @app.get("/text")
    def text() -> Any:
        return app.response_class(["h\u00e9", "llo"])

    lagless.instrument(app, integrations=False)
    client = app.test_client()
    sizes = {}
    for path in ("/one", "/chunks", "/text"):
        response = client.get(path)
        assert response.status_code == 200
        sizes[path] = (fresh_runtime.recent_traces()[-1].response_bytes, len(response.get_data()))
    assert sizes["/one"][0] == sizes["/one"][1] > 0
    assert sizes["/chunks"] == (5, 5)
    assert sizes["/text"] == (6, 6)  # "é" is two bytes in UTF-8


def test_request_lookup_is_the_current_request(fresh_runtime: Runtime) -> None:
    """The hooks' fast request lookup returns the very request the view sees, in every
    request (not the first one's)."""
    app = flask.Flask("lagless_request_lookup")
    seen: list[tuple[Any, Any]] = []

    @app.get("/r/<int:n>")
    def r(n: int) -> str:
        seen.append((flask_mod._request(), flask.request._get_current_object()))
        return str(n)

    lagless.instrument(app, integrations=False)
    client = app.test_client()
    for n in range(3):
        assert client.get(f"/r/{n}").status_code == 200
    assert len(seen) == 3
    assert all(fast is real for fast, real in seen)
    assert len({id(fast) for fast, _ in seen}) == 3


def test_handler_span_when_dispatch_runs_without_preprocess(fresh_runtime: Runtime) -> None:
    """An extension or test driving ``dispatch_request`` by hand (no ``preprocess_request``
    first) still gets a handler span named after the view."""
    app = flask.Flask("lagless_manual_dispatch")

    @app.get("/v/<int:n>")
    def view(n: int) -> str:
        return str(n)

    lagless.instrument(app, integrations=False)
    with app.test_request_context("/v/3"):
        trace = Trace("GET", "/v/3")
        token = _current_trace.set(trace)
        try:
            assert app.dispatch_request() == "3"
        finally:
            _current_trace.reset(token)
    [handler] = [s for s in trace.spans if s.kind == "handler"]
    assert handler.name.endswith("view")

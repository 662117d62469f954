"""LaglessMiddleware through Django's own test clients: WSGI path (``Client``) and ASGI path
(``AsyncClient``)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from django.test import AsyncClient, Client, override_settings

import lagless.integrations.django.middleware as mw_mod
from lagless._runtime import Runtime
from lagless._trace import Trace, current_trace
from lagless.integrations import installed_integrations
from tests.integrations.django import views

LAYERS = [
    "django.middleware.common.CommonMiddleware",
    "tests.integrations.django.mw.MixinMiddleware",
    "tests.integrations.django.mw.NewStyleMiddleware",
]


def only(rt: Runtime) -> Trace:
    traces = rt.recent_traces()
    assert len(traces) == 1, traces
    return traces[0]


@pytest.mark.parametrize(
    ("url", "route"),
    [
        ("/users/3/", "/users/{pk}/"),
        ("/api/v1/items/red-shoe/", "/api/v1/items/{slug}/"),
        ("/api/v1/legacy/1999/", "/api/v1/legacy/{year}/"),
        ("/articles/2024/", "/articles/{year}/"),
        ("/cbv/", "/cbv/"),
    ],
)
def test_route_templates(fresh_runtime: Runtime, url: str, route: str) -> None:
    response = Client().get(url)
    assert response.status_code == 200
    trace = only(fresh_runtime)
    assert (trace.route, trace.status, trace.path) == (route, 200, url)
    assert trace.attrs["framework"] == "django"


def test_unmatched_route_and_404(fresh_runtime: Runtime) -> None:
    response = Client().get("/no/such/page/")
    assert response.status_code == 404
    trace = only(fresh_runtime)
    assert trace.route is None and trace.status == 404
    assert trace.spans_of("handler") == []
    assert "Server-Timing" in response.headers


def test_server_timing_header_counts_queries(fresh_runtime: Runtime) -> None:
    response = Client().get("/books/")
    assert response.json() == {"titles": ["book 2", "book 3", "book 4", "book 5"], "count": 5}
    timing = response.headers["Server-Timing"]
    assert 'desc="2 queries"' in timing and "total;dur=" in timing
    assert response.headers["X-Mixin"] == "1"  # other middleware untouched
    trace = only(fresh_runtime)
    assert trace.response_headers["server-timing"] == timing
    assert trace.response_bytes == len(response.content)


def test_existing_server_timing_header_is_extended(fresh_runtime: Runtime) -> None:
    response = Client().get("/with-timing/")
    assert response.headers["Server-Timing"].startswith("cdn;dur=1, ")
    assert "total;dur=" in response.headers["Server-Timing"]


def test_middleware_and_handler_spans(fresh_runtime: Runtime) -> None:
    Client().get("/users/2/")
    trace = only(fresh_runtime)
    layers = trace.spans_of("middleware")
    assert [s.name for s in layers] == LAYERS
    (handler,) = trace.spans_of("handler")
    assert handler.name == "tests.integrations.django.views.user"
    # Layers are entered outside-in; the handler runs inside all of them.
    starts = [s.start_ns for s in layers] + [handler.start_ns]
    assert starts == sorted(starts)
    # Own times are disjoint pieces of the request, so they fit in it.
    assert sum(s.duration_ns for s in layers) + handler.duration_ns <= trace.duration_ns
    (db,) = trace.spans_of("db")
    assert handler.start_ns <= db.start_ns <= db.end_ns <= handler.end_ns
    assert "mw;dur=" in trace.response_headers["server-timing"]


def test_class_based_view_handler_name(fresh_runtime: Runtime) -> None:
    Client().get("/cbv/")
    (handler,) = only(fresh_runtime).spans_of("handler")
    assert handler.name == "tests.integrations.django.views.BookView"


def test_middleware_short_circuit(fresh_runtime: Runtime) -> None:
    response = Client().get("/short-circuit/")
    assert response.status_code == 403
    trace = only(fresh_runtime)
    assert [s.name for s in trace.spans_of("middleware")] == LAYERS
    assert trace.spans_of("handler") == []


def test_function_middleware_is_followed_through_its_closure(fresh_runtime: Runtime) -> None:
    middleware = [
        "lagless.django.LaglessMiddleware",
        "tests.integrations.django.mw.MixinMiddleware",
        "tests.integrations.django.mw.function_middleware",
        "tests.integrations.django.mw.NewStyleMiddleware",
    ]
    with override_settings(MIDDLEWARE=middleware):
        client = Client()
        assert client.get("/users/1/").status_code == 200
        assert client.get("/users/2/").status_code == 200  # the chain is probed once
    for trace in fresh_runtime.recent_traces():
        assert [(s.name, s.get("inclusive")) for s in trace.spans_of("middleware")] == [
            ("tests.integrations.django.mw.MixinMiddleware", None),
            ("tests.integrations.django.mw.function_middleware", None),
            ("tests.integrations.django.mw.NewStyleMiddleware", None),
        ]
        assert len(trace.spans_of("handler")) == 1
        assert len(trace.spans_of("db")) == 1


def test_opaque_middleware_is_timed_inclusively(fresh_runtime: Runtime) -> None:
    middleware = [
        "lagless.django.LaglessMiddleware",
        "tests.integrations.django.mw.MixinMiddleware",
        "tests.integrations.django.mw.opaque_middleware",
        "tests.integrations.django.mw.NewStyleMiddleware",
    ]
    with override_settings(MIDDLEWARE=middleware):
        assert Client().get("/users/1/").status_code == 200
    trace = only(fresh_runtime)
    layers = trace.spans_of("middleware")
    assert [(s.name, s.get("inclusive")) for s in layers] == [
        ("tests.integrations.django.mw.MixinMiddleware", None),
        ("tests.integrations.django.mw.opaque_middleware", True),
    ]
    assert trace.spans_of("handler") == []


def test_middleware_timing_switch_keeps_handler(fresh_runtime: Runtime) -> None:
    fresh_runtime.configure(middleware_timing=False)
    Client().get("/users/2/")
    trace = only(fresh_runtime)
    assert trace.spans_of("middleware") == []
    assert len(trace.spans_of("handler")) == 1


def test_installs_driver_integrations(fresh_runtime: Runtime) -> None:
    assert "django" not in installed_integrations()
    Client().get("/users/1/")
    assert "django" in installed_integrations()


def test_view_exception_is_a_traced_500(fresh_runtime: Runtime) -> None:
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    trace = only(fresh_runtime)
    assert trace.status == 500 and trace.route == "/boom/"
    assert trace.attrs["error"] == "RuntimeError: view exploded"
    assert "Server-Timing" in response.headers


def test_exception_still_reaches_the_test_client(fresh_runtime: Runtime) -> None:
    with pytest.raises(RuntimeError, match="view exploded"):
        Client().get("/boom/")
    assert only(fresh_runtime).status == 500


def test_streaming_response_timed_to_its_end(fresh_runtime: Runtime) -> None:
    response = Client().get("/stream/")
    assert response.streaming
    assert fresh_runtime.recent_traces() == []  # body not produced yet
    body = b"".join(response.streaming_content)
    assert body == b"book 1\nbook 2\nbook 3\n"
    response.close()
    trace = only(fresh_runtime)
    assert trace.response_bytes == len(body)
    # Queries run while streaming belong to the request.
    assert len(trace.spans_of("db")) == 3
    assert current_trace() is None


def test_internal_error_is_logged_and_response_unchanged(
    fresh_runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(trace: Trace, now_ns: int) -> str:
        raise RuntimeError("bug in lagless")

    monkeypatch.setattr(mw_mod, "server_timing", broken)
    with caplog.at_level(logging.ERROR, logger="lagless"):
        response = Client().get("/users/4/")
    assert response.status_code == 200
    assert response.json() == {"pk": 4, "title": "book 4"}
    assert "Server-Timing" not in response.headers
    assert "internal error in django:response" in caplog.text
    assert only(fresh_runtime).route == "/users/{pk}/"


def test_failure_to_start_a_trace_serves_the_request_untraced(
    fresh_runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> Trace:
        raise RuntimeError("bug in lagless")

    monkeypatch.setattr(mw_mod, "Trace", broken)
    with caplog.at_level(logging.ERROR, logger="lagless"):
        response = Client().get("/users/4/")
    assert response.json() == {"pk": 4, "title": "book 4"}
    assert "internal error in django:begin" in caplog.text
    assert fresh_runtime.recent_traces() == []


def test_disabled_passes_through(fresh_runtime: Runtime) -> None:
    fresh_runtime.configure(enabled=False)
    response = Client().get("/users/1/")
    assert response.status_code == 200
    assert "Server-Timing" not in response.headers
    assert fresh_runtime.recent_traces() == []


def test_inside_an_instrumented_wsgi_app_one_trace(fresh_runtime: Runtime) -> None:
    """Regression: the Django middleware inside ``lagless.instrument(WSGIHandler())`` started a
    second trace, so each request left an empty outer trace, a Django one, and two
    Server-Timing headers. It now adds its route, layers and handler to the outer trace."""
    from django.core.handlers.wsgi import WSGIHandler
    from werkzeug.test import Client as WerkzeugClient

    import lagless

    app = lagless.instrument(WSGIHandler(), integrations=False)
    response = WerkzeugClient(app).get("/users/2/", buffered=True)
    assert response.status_code == 200
    trace = only(fresh_runtime)
    assert (trace.route, trace.status, trace.attrs["framework"]) == ("/users/{pk}/", 200, "django")
    assert [s.name for s in trace.spans_of("middleware")] == LAYERS
    (handler,) = trace.spans_of("handler")
    assert handler.name == "tests.integrations.django.views.user"
    assert len(trace.spans_of("db")) == 1
    assert len(response.headers.getlist("Server-Timing")) == 1
    assert response.headers["Server-Timing"].count("total;dur=") == 1


async def test_inside_an_instrumented_asgi_app_one_trace(fresh_runtime: Runtime) -> None:
    from django.core.handlers.asgi import ASGIHandler

    from lagless.integrations.asgi import LaglessMiddleware

    app = LaglessMiddleware(ASGIHandler())
    sent: list[dict[str, object]] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/async/users/3/",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
    }
    inbound = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, object]:
        if inbound:
            return inbound.pop(0)
        await asyncio.Event().wait()  # the client stays connected (Django listens for it)
        raise AssertionError("unreachable")

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 200
    timings = [v for k, v in start["headers"] if k.lower() == b"server-timing"]  # type: ignore[attr-defined]
    assert len(timings) == 1
    trace = only(fresh_runtime)
    assert (trace.route, trace.status) == ("/async/users/{pk}/", 200)
    assert len(trace.spans_of("handler")) == 1


def test_two_concurrent_requests_never_mix_spans(
    fresh_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_runtime.configure(record_params=True)
    monkeypatch.setattr(views, "BARRIER", threading.Barrier(2, timeout=10))
    errors: list[BaseException] = []

    def call(pk: int) -> None:
        try:
            assert Client().get(f"/together/{pk}/").json()["title"] == f"book {pk}"
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(pk,)) for pk in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    traces = fresh_runtime.recent_traces()
    assert sorted(t.path for t in traces) == ["/together/1/", "/together/2/"]
    for trace in traces:
        pk = int(trace.path.strip("/").rsplit("/", 1)[-1])
        spans = trace.spans_of("db")
        assert len(spans) == 2
        assert all(s.get("params")[0] == pk for s in spans)


# -- ASGI path --------------------------------------------------------------------------------


async def test_async_view_through_asgi(fresh_runtime: Runtime) -> None:
    response = await AsyncClient().get("/async/users/3/")
    assert response.status_code == 200
    assert response.json() == {"pk": 3, "title": "book 3"}
    assert "total;dur=" in response.headers["Server-Timing"]
    trace = only(fresh_runtime)
    assert trace.route == "/async/users/{pk}/"
    # The ORM call ran in a worker thread; its span still lands in this request's trace.
    (db,) = trace.spans_of("db")
    assert db.get("driver") == "django"
    assert [s.name for s in trace.spans_of("middleware")] == LAYERS
    assert trace.spans_of("handler")[0].name == "tests.integrations.django.views.async_user"


async def test_sync_view_and_async_middleware_through_asgi(fresh_runtime: Runtime) -> None:
    middleware = [
        "lagless.django.LaglessMiddleware",
        "tests.integrations.django.mw.AsyncMiddleware",
        "tests.integrations.django.mw.NewStyleMiddleware",
    ]
    with override_settings(MIDDLEWARE=middleware):
        response = await AsyncClient().get("/users/5/")
    assert response.json() == {"pk": 5, "title": "book 5"}
    trace = only(fresh_runtime)
    assert [s.name for s in trace.spans_of("middleware")] == [
        "tests.integrations.django.mw.AsyncMiddleware",
        "tests.integrations.django.mw.NewStyleMiddleware",
    ]
    assert len(trace.spans_of("db")) == 1
    assert len(trace.spans_of("handler")) == 1


async def test_async_streaming_and_errors_through_asgi(fresh_runtime: Runtime) -> None:
    client = AsyncClient(raise_request_exception=False)
    response = await client.get("/async-stream/")
    chunks = [chunk async for chunk in response.streaming_content]
    assert b"".join(chunks) == b"chunk 0\nchunk 1\nchunk 2\n"
    trace = only(fresh_runtime)
    assert trace.route == "/async-stream/" and trace.response_bytes == 24
    fresh_runtime.clear()
    response = await client.get("/boom/")
    assert response.status_code == 500
    trace = only(fresh_runtime)
    assert trace.status == 500
    assert trace.attrs["error"] == "RuntimeError: view exploded"


def test_lagless_alone_times_the_handler_without_probe_slots(fresh_runtime: Runtime) -> None:
    """With no middleware inside lagless's there is nothing to probe: the handler span is
    lagless's own call into the view, and the request carries no probe slots."""
    with override_settings(MIDDLEWARE=["lagless.django.LaglessMiddleware"]):
        response = Client().get("/users/1/")
        assert response.status_code == 200
        assert mw_mod._SLOTS not in response.wsgi_request.__dict__
    trace = only(fresh_runtime)
    (handler,) = trace.spans_of("handler")
    assert handler.name == "tests.integrations.django.views.user"
    assert trace.spans_of("middleware") == []
    assert 0 < handler.duration_ns <= trace.duration_ns

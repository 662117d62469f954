"""OpenTelemetry export, checked with the SDK's in-memory exporter."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from lagless._runtime import Runtime
from lagless.monitor import Monitor, OTelExporter
from tests.monitor._traces import make_trace


@pytest.fixture
def otel() -> Any:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def by_name(spans: Any) -> dict[str, Any]:
    return {s.name: s for s in spans}


def test_a_trace_becomes_a_server_span_with_semantic_convention_children(otel: Any) -> None:
    provider, exporter = otel
    trace = make_trace(
        "/users/{id}",
        path="/users/42",
        duration_ms=80,
        status=200,
        start_time=1_700_000_000.25,
        headers={"host": "api.example.com:8443", "user-agent": "curl/8"},
        spans=[
            (
                "db",
                "SELECT * FROM users WHERE id = 42",
                5,
                12,
                {"db.system": "postgresql", "rows": 1},
            ),
            ("cache", "GET session:{}", 20, 1, {"driver": "redis", "hit": True}),
            (
                "http",
                "POST https://billing.example.com/charge",
                30,
                25,
                {"method": "POST", "host": "billing.example.com", "status": 201},
            ),
            ("serialize", "json", 60, 3, None),
        ],
    )
    OTelExporter(tracer_provider=provider).export(trace)
    spans = by_name(exporter.get_finished_spans())
    root = spans["GET /users/{id}"]
    assert root.kind is SpanKind.SERVER
    assert dict(root.attributes) == {
        "http.request.method": "GET",
        "http.route": "/users/{id}",
        "url.path": "/users/42",
        "http.response.status_code": 200,
        "http.response.body.size": 0,
        "server.address": "api.example.com",
        "server.port": 8443,
        "user_agent.original": "curl/8",
        "lagless.trace_id": trace.id,
    }
    start = 1_700_000_000_250_000_000
    assert root.start_time == start
    assert root.end_time == start + 80_000_000
    db = spans["SELECT postgresql"]
    assert db.kind is SpanKind.CLIENT
    assert db.parent.span_id == root.context.span_id
    assert db.context.trace_id == root.context.trace_id
    assert db.attributes["db.system.name"] == "postgresql"
    assert db.attributes["db.operation.name"] == "SELECT"
    assert db.attributes["db.response.returned_rows"] == 1
    assert "42" not in db.attributes["db.query.text"]  # literals redacted by default
    # Each span keeps its exact offset and length from the request's start.
    assert (db.start_time - start, db.end_time - db.start_time) == (5_000_000, 12_000_000)
    cache = spans["GET"]
    assert cache.attributes["db.system.name"] == "redis"
    assert cache.attributes["lagless.cache.hit"] is True
    http = spans["POST"]
    assert http.kind is SpanKind.CLIENT
    assert http.attributes["url.full"] == "https://billing.example.com/charge"
    assert http.attributes["server.address"] == "billing.example.com"
    assert http.attributes["http.response.status_code"] == 201
    assert http.start_time - start == 30_000_000
    assert spans["json"].kind is SpanKind.INTERNAL


def test_incoming_traceparent_continues_the_callers_trace(otel: Any) -> None:
    provider, exporter = otel
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent_id = "00f067aa0ba902b7"
    trace = make_trace(headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
    OTelExporter(tracer_provider=provider).export(trace)
    (root,) = exporter.get_finished_spans()
    assert format(root.context.trace_id, "032x") == trace_id
    assert format(root.parent.span_id, "016x") == parent_id


def test_server_errors_and_failed_spans_carry_error_status(otel: Any) -> None:
    provider, exporter = otel
    trace = make_trace(
        None,
        path="/nope",
        status=503,
        spans=[
            ("db", "SELECT 1", 1, 1, {"db.system": "sqlite", "error": "OperationalError: locked"})
        ],
    )
    trace.attrs["error"] = "RuntimeError: boom"
    OTelExporter(tracer_provider=provider).export(trace)
    spans = by_name(exporter.get_finished_spans())
    root = spans["GET"]  # no route: the name is the method alone
    assert "http.route" not in root.attributes
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes["error.type"] == "RuntimeError"
    db = spans["SELECT sqlite"]
    assert db.status.status_code is StatusCode.ERROR
    assert db.attributes["error.type"] == "OperationalError"


def test_a_client_error_is_not_a_server_span_error(otel: Any) -> None:
    provider, exporter = otel
    OTelExporter(tracer_provider=provider).export(make_trace(status=404))
    (root,) = exporter.get_finished_spans()
    assert root.status.status_code is StatusCode.UNSET


def test_the_monitor_exports_every_finished_trace_when_otel_is_on(
    otel: Any, fresh_runtime: Runtime
) -> None:
    provider, exporter = otel
    fresh_runtime.configure(otel=True)
    mon = Monitor(runtime=fresh_runtime, background=False, tracer_provider=provider).install()
    for _ in range(3):
        fresh_runtime.finish_trace(make_trace())
    assert len(exporter.get_finished_spans()) == 3
    mon.uninstall()

"""OTLP/JSON span exports read as lagless traces (for `lagless analyze`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lagless._otlp import OTLPFormatError, is_otlp, parse_otlp
from lagless.cli import main

T0 = 1_700_000_000_000_000_000


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        v: dict[str, Any] = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}  # OTLP/JSON sends 64-bit ints as strings
    elif isinstance(value, float):
        v = {"doubleValue": value}
    elif isinstance(value, list):
        v = {"arrayValue": {"values": [{"stringValue": x} for x in value]}}
    else:
        v = {"stringValue": value}
    return {"key": key, "value": v}


def _span(
    trace_id: str,
    span_id: str,
    parent: str,
    name: str,
    start_us: int,
    end_us: int,
    kind: Any = 1,
    **attrs: Any,
) -> dict[str, Any]:
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(T0 + start_us * 1000),
        "endTimeUnixNano": str(T0 + end_us * 1000),
        "attributes": [_attr(k.replace("__", "."), v) for k, v in attrs.items()],
        "status": {},
    }


def _request(trace_id: str, n_books: int = 6) -> list[dict[str, Any]]:
    spans = [
        _span(
            trace_id,
            "s1",
            "",
            "GET /authors/{id}",
            0,
            20_000,
            kind="SPAN_KIND_SERVER",
            **{
                "http.request.method": "GET",
                "http.route": "/authors/{id}",
                "url.path": "/authors/3",
                "http.response.status_code": 200,
                "http.request.header.accept-encoding": ["gzip"],
                "http.response.header.content-type": ["application/json"],
            },
        ),
        _span(
            trace_id,
            "s2",
            "s1",
            "GET /authors/{id} http send",
            19_000,
            19_100,
            kind=1,
            **{"asgi.event.type": "http.response.start"},
        ),
        _span(
            trace_id,
            "s3",
            "s1",
            "SELECT",
            100,
            400,
            kind=3,
            **{"db.system": "postgresql", "db.statement": "SELECT * FROM author WHERE id = 3"},
        ),
    ]
    for i in range(n_books):
        spans.append(
            _span(
                trace_id,
                f"b{i}",
                "s1",
                "SELECT book",
                500 + i * 500,
                900 + i * 500,
                kind=3,
                **{
                    "db.system.name": "postgresql",
                    "db.query.text": "SELECT * FROM book WHERE id = $1",
                    "db.operation.parameter.0": str(i),
                },
            )
        )
    spans.append(
        _span(
            trace_id,
            "h1",
            "s1",
            "GET",
            5000,
            9000,
            kind="SPAN_KIND_CLIENT",
            **{
                "http.request.method": "GET",
                "url.full": "https://api.example.org/x",
                "http.response.status_code": 200,
            },
        )
    )
    spans.append(
        _span(
            trace_id,
            "r1",
            "s1",
            "GET",
            9000,
            9100,
            kind=3,
            **{"db.system": "redis", "db.statement": "GET user:3"},
        )
    )
    return spans


def _doc(spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attr("service.name", "shop")]},
                "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}],
            }
        ]
    }


def test_server_span_becomes_a_trace_with_typed_children() -> None:
    traces = parse_otlp(json.dumps(_doc(_request("t1"))))
    assert len(traces) == 1
    t = traces[0]
    assert (t.method, t.route, t.path, t.status) == ("GET", "/authors/{id}", "/authors/3", 200)
    assert t.duration_ms == 20.0
    assert t.request_headers == {"accept-encoding": "gzip"}
    assert t.response_headers == {"content-type": "application/json"}
    assert t.attrs["service"] == "shop"
    kinds = [s.kind for s in t.ordered_spans()]
    assert kinds == ["db"] * 7 + ["http", "cache"]  # the ASGI "http send" span is dropped
    first = t.ordered_spans()[0]
    assert first.name == "SELECT * FROM author WHERE id = 3"
    assert t.offset_ms(first) == pytest.approx(0.1)
    books = [s for s in t.spans if "book" in s.name]
    assert len({s.get("params_hash") for s in books}) == 6  # different parameters each
    assert t.spans_of("http")[0].name == "GET https://api.example.org/x"


def test_json_lines_and_several_traces() -> None:
    lines = "\n".join(json.dumps(_doc(_request(tid, 2))) for tid in ("a", "b", "c"))
    traces = parse_otlp(lines)
    assert len(traces) == 3
    assert {t.id.split(":")[0] for t in traces} == {"a", "b", "c"}


def test_legacy_attribute_names_and_a_trace_without_server_span() -> None:
    spans = [
        _span(
            "x",
            "root",
            "",
            "handler",
            0,
            1000,
            kind=1,
            **{"http.method": "POST", "http.target": "/orders?x=1", "http.status_code": 500},
        ),
        _span(
            "x",
            "c",
            "root",
            "q",
            10,
            20,
            kind=3,
            **{"db.system": "sqlite", "db.statement": "SELECT 1"},
        ),
    ]
    spans[0]["status"] = {"code": "STATUS_CODE_ERROR", "message": "boom"}
    (t,) = parse_otlp(json.dumps(_doc(spans)))
    assert (t.method, t.path, t.query_string, t.status, t.route) == (
        "POST",
        "/orders",
        "x=1",
        500,
        None,
    )
    assert t.attrs["error"] == "boom"


def test_not_otlp_is_a_clear_error() -> None:
    assert not is_otlp({"traces": []})
    with pytest.raises(OTLPFormatError, match="not OTLP"):
        parse_otlp('{"traces": []}')
    with pytest.raises(OTLPFormatError, match=":2: not JSON"):
        parse_otlp('{"resourceSpans": []}\n{oops', source="f")


def test_analyze_finds_the_n_plus_one_in_an_otlp_export(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "otel.json"
    path.write_text(json.dumps(_doc(_request("t1"))))
    out_json = tmp_path / "out.json"
    code = main(
        ["analyze", str(path), "--mode", "doctor", "--json", str(out_json), "--fail-on", "high"]
    )
    report = json.loads(out_json.read_text())
    codes = {f["code"] for f in report["findings"]}
    assert "n-plus-one" in codes
    assert code == 1
    assert "n-plus-one" in capsys.readouterr().out


def _mutations() -> list[Any]:
    """Every field of a good export replaced by values of the wrong shape."""
    junk: list[Any] = [None, "x", 7, 1.5, [], {}, [1], {"a": 1}, "9" * 5000]
    out: list[Any] = [{"resourceSpans": j} for j in junk]
    out += [{"resourceSpans": [{"resource": j, "scopeSpans": []}]} for j in junk]
    out += [{"resourceSpans": [{"scopeSpans": j}]} for j in junk]
    out += [{"resourceSpans": [{"scopeSpans": [j]}]} for j in junk]
    out += [{"resourceSpans": [{"scopeSpans": [{"spans": j}]}]} for j in junk]
    good = _request("t1")
    for key in ("kind", "status", "attributes", "startTimeUnixNano", "spanId", "name"):
        for j in junk:
            spans = [dict(s) for s in good]
            spans[0][key] = j
            out.append(_doc(spans))
    for j in junk:  # attribute values of the wrong type where numbers are read
        spans = [dict(s) for s in good]
        spans[0]["attributes"] = [
            {"key": "http.response.status_code", "value": {"stringValue": j}},
            {"key": "http.response.body.size", "value": {"intValue": j}},
        ]
        out.append(_doc(spans))
    return out


@pytest.mark.parametrize("doc", _mutations())
def test_hostile_exports_give_a_format_error_or_traces_never_a_crash(doc: Any) -> None:
    # Regression: non-object items raised AttributeError, a list "kind" TypeError, and
    # non-numeric status codes ValueError, each as a traceback out of `lagless analyze`.
    try:
        traces = parse_otlp(json.dumps(doc))
    except OTLPFormatError:
        return
    for t in traces:
        assert isinstance(t.status, int) and isinstance(t.method, str)


def test_cyclic_parent_links_terminate() -> None:
    # Regression: a reused span id whose parent is its own descendant looped for ever.
    spans = [
        _span("t", "a", "", "GET /", 0, 100, kind="SPAN_KIND_SERVER", **{"url.path": "/"}),
        _span("t", "b", "a", "one", 1, 2),
        _span("t", "c", "b", "two", 2, 3),
        _span("t", "b", "c", "again", 3, 4),
    ]
    (trace,) = parse_otlp(json.dumps(_doc(spans)))
    assert sorted(s.name for s in trace.spans) == ["again", "one", "two"]


def test_deeply_nested_json_is_a_clear_cli_error(tmp_path: Path, capsys: Any) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    assert main(["analyze", str(deep)]) == 2
    assert "nested too deeply" in capsys.readouterr().err


@pytest.mark.parametrize(
    "record",
    [
        {"method": 5, "path": "/", "spans": []},
        {"method": "GET", "path": "/", "route": 5, "spans": []},
        {"method": "GET", "path": "/", "spans": "x"},
        {"method": "GET", "path": "/", "duration_ms": 1e308, "spans": []},
        {"method": "GET", "path": "/", "response_headers": {"etag": 1}, "spans": []},
        {"method": "GET", "path": "/", "spans": [{"kind": "db", "start_ms": "soon"}]},
    ],
)
def test_malformed_lagless_traces_are_a_clear_cli_error(
    tmp_path: Path, capsys: Any, record: dict[str, Any]
) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(record))
    assert main(["analyze", str(path)]) == 2
    assert f"{path}: " in capsys.readouterr().err

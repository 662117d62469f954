from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import lagless
from lagless._export import (
    TraceFormatError,
    dump_traces,
    iter_trace_dicts,
    trace_from_dict,
    trace_to_dict,
)
from lagless._runtime import Runtime
from lagless._trace import Trace


def _trace() -> Trace:
    t = Trace("GET", "/books/7", route="/books/{id}", start_ns=1_000_000, start_time=1.5)
    t.status = 200
    t.response_bytes = 42
    t.add_span(
        "db",
        "SELECT * FROM book WHERE title = 'secret' AND id = ?",
        1_500_000,
        2_000_000,
        {"rows": 1, "params": (7,), "params_hash": 99},
    )
    t.finish(5_000_000)
    t.request_headers = {"Cookie": "session=abc", "Accept-Encoding": "gzip"}
    t.response_headers = {"Set-Cookie": "x=y", "ETag": '"v1"'}
    return t


def test_round_trip_keeps_timing_and_redacts() -> None:
    data = trace_to_dict(_trace())
    assert data["route"] == "/books/{id}"
    assert data["duration_ms"] == 4.0
    span = data["spans"][0]
    assert span["start_ms"] == 0.5
    assert span["duration_ms"] == 0.5
    assert "secret" not in span["name"]
    assert "params" not in span["attrs"]
    assert span["attrs"]["params_hash"] == 99
    # Cookie values never leave; their presence does.
    assert "cookie" not in data["request_headers"]
    assert "set-cookie" not in data["response_headers"]
    assert data["attrs"]["has_cookie"] is True
    assert data["attrs"]["has_set_cookie"] is True
    back = trace_from_dict(json.loads(json.dumps(data)))
    assert back.route == "/books/{id}"
    assert back.duration_ns == 4_000_000
    assert back.spans[0].start_ns - back.start_ns == 500_000
    assert back.response_headers["etag"] == '"v1"'


def test_record_params_keeps_values() -> None:
    data = trace_to_dict(_trace(), record_params=True)
    assert "secret" in data["spans"][0]["name"]
    assert data["spans"][0]["attrs"]["params"] == [7]


def test_document_and_json_lines(tmp_path: Path) -> None:
    buf = io.StringIO()
    assert dump_traces([_trace(), _trace()], buf) == 2
    doc = tmp_path / "t.json"
    doc.write_text(buf.getvalue())
    assert len(lagless.load_traces(doc)) == 2
    lines = tmp_path / "t.jsonl"
    lines.write_text("\n".join(json.dumps(trace_to_dict(_trace())) for _ in range(3)) + "\n")
    assert [t.route for t in lagless.load_traces(lines)] == ["/books/{id}"] * 3


def test_bad_files_name_the_problem() -> None:
    with pytest.raises(TraceFormatError, match="version 9"):
        list(iter_trace_dicts('{"format": "lagless-traces", "version": 9, "traces": []}'))
    with pytest.raises(TraceFormatError, match="not a lagless trace export"):
        list(iter_trace_dicts('{"format": "other", "traces": []}', source="x.json"))
    with pytest.raises(TraceFormatError, match=r"f\.jsonl:2: not JSON"):
        list(iter_trace_dicts('{"spans": []}\n{oops\n', source="f.jsonl"))


def test_trace_file_sink_appends_json_lines(tmp_path: Path, fresh_runtime: Runtime) -> None:
    path = tmp_path / "traces.jsonl"
    fresh_runtime.configure(trace_file=str(path))
    fresh_runtime.finish_trace(_trace())
    fresh_runtime.finish_trace(_trace())
    fresh_runtime.configure(trace_file=None)
    assert len(lagless.load_traces(path)) == 2


def test_export_recent(tmp_path: Path, fresh_runtime: Runtime) -> None:
    fresh_runtime.finish_trace(_trace())
    out = tmp_path / "recent.json"
    assert lagless.export_traces(out) == 1
    assert json.loads(out.read_text())["format"] == "lagless-traces"


def test_path_and_request_error_are_folded_unless_record_params() -> None:
    t = _trace()
    t.path = "/reset/8f3a9c2e4b1d7f6a/users/12345"
    t.attrs["error"] = "IntegrityError: duplicate 'alice@example.com'\n[parameters: ('x',)]"
    data = trace_to_dict(t)
    assert "12345" not in data["path"]
    assert "8f3a9c2e4b1d7f6a" not in data["path"]
    assert data["attrs"]["error"] == "IntegrityError: duplicate ?"
    kept = trace_to_dict(t, record_params=True)
    assert kept["path"] == t.path
    assert "alice@example.com" in kept["attrs"]["error"]

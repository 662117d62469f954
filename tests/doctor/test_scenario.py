"""The scenario format shared by `lagless doctor` and `lagless bench`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lagless._scenario import (
    MissingValue,
    ScenarioError,
    ScenarioState,
    load_scenario,
    parse_capture,
    parse_scenario,
)

TOML = """\
headers = { Authorization = "Bearer t0k" }

[params]
book_id = [1, 2, 3]

[[request]]
name = "list books"
path = "/api/books"
query = { limit = 20 }
weight = 3
capture = { first = "json:items.0.id", tag = "header:ETag" }

[[request]]
method = "post"
path = "/api/orders"
json = { book_id = "{first}", note = "for {first}", quantity = 1 }
"""

YAML = """\
headers:
  Authorization: Bearer t0k
params:
  book_id: [1, 2, 3]
request:
  - name: list books
    path: /api/books
    query: {limit: 20}
    weight: 3
    capture: {first: "json:items.0.id", tag: "header:ETag"}
  - method: post
    path: /api/orders
    json: {book_id: "{first}", note: "for {first}", quantity: 1}
"""


@pytest.mark.parametrize(("text", "fmt"), [(TOML, "toml"), (YAML, "yaml")])
def test_toml_and_yaml_parse_to_the_same_scenario(text: str, fmt: str) -> None:
    sc = parse_scenario(text, fmt=fmt, source=f"s.{fmt}")
    assert [r.name for r in sc.requests] == ["list books", "POST /api/orders"]
    listing, order = sc.requests
    assert listing.weight == 3.0
    assert listing.query == (("limit", 20),)
    assert {c.var for c in listing.captures} == {"first", "tag"}
    assert order.method == "POST" and order.unsafe and not listing.unsafe
    assert sc.headers == (("Authorization", "Bearer t0k"),)
    assert sc.params == {"book_id": [1, 2, 3]}
    assert listing.line == 6
    assert order.line == (13 if fmt == "toml" else 11)


def test_prepare_fills_placeholders_and_keeps_captured_types() -> None:
    sc = parse_scenario(TOML)
    state = ScenarioState(sc)
    listing, order = sc.requests
    prepared = state.prepare(listing)
    assert prepared.url == "/api/books?limit=20"
    assert ("Authorization", "Bearer t0k") in prepared.headers
    with pytest.raises(MissingValue, match=r"no value for \{first\}"):
        state.prepare(order)
    body = json.dumps({"items": [{"id": 41}, {"id": 42}]}).encode()
    state.record(listing, 200, {"ETag": '"abc"'}, body)
    assert state.captured == {"first": 41, "tag": '"abc"'}
    prepared = state.prepare(order)
    assert prepared.method == "POST"
    assert json.loads(prepared.body or b"") == {"book_id": 41, "note": "for 41", "quantity": 1}
    assert ("content-type", "application/json") in prepared.headers


def test_a_failed_response_keeps_the_earlier_capture() -> None:
    sc = parse_scenario(TOML)
    state = ScenarioState(sc)
    listing = sc.requests[0]
    state.record(listing, 200, {}, b'{"items": [{"id": 7}]}')
    state.record(listing, 500, {}, b"Internal Server Error")
    assert state.captured["first"] == 7


def test_list_values_are_drawn_in_turn_and_path_values_are_quoted() -> None:
    sc = parse_scenario(
        '[params]\nid = [1, 2]\nslug = "a b/c"\n[[request]]\npath = "/x/{id}/{slug}"\n'
    )
    state = ScenarioState(sc)
    urls = [state.prepare(sc.requests[0]).url for _ in range(3)]
    assert urls == ["/x/1/a%20b%2Fc", "/x/2/a%20b%2Fc", "/x/1/a%20b%2Fc"]


def test_pick_is_weighted_and_deterministic() -> None:
    sc = parse_scenario(TOML)
    picks = [ScenarioState(sc, seed=1).pick().name for _ in range(3)]
    assert len(set(picks)) == 1  # same seed, same first choice
    state = ScenarioState(sc, seed=2)
    names = [state.pick().name for _ in range(400)]
    share = names.count("list books") / len(names)
    assert 0.65 < share < 0.85  # weight 3 against 1


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('[[request]]\npath = "/a"\n\n[[request]]\nmethod = "FETCH"\npath = "/b"\n', 5, "FETCH"),
        ('[[request]]\npath = "/a"\nweight = -1\n', 3, "weight"),
        ('[[request]]\npath = "a"\n', 2, "starting with '/'"),
        ('[[request]]\npath = "/a"\nbody = "x"\njson = {a = 1}\n', 4, "either 'body' or 'json'"),
        ('[[request]]\npath = "/a"\npaht = "/b"\n', 3, "unknown request key 'paht'"),
        ('requests_typo = 1\n[[request]]\npath = "/a"\n', 1, "unknown key"),
        ('[[request]]\npath = "/a"\ncapture = { x = "body:id" }\n', 3, "capture 'x'"),
        ('[[request]]\npath = "/a"\nparams = { id = [] }\n', 3, "empty list"),
        ('[[request]]\npath = "/a"\n[[request\n', 3, "invalid TOML"),
    ],
)
def test_toml_errors_name_the_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as info:
        parse_scenario(text, source="doctor.toml")
    assert info.value.source == "doctor.toml"
    assert info.value.line == line
    assert str(info.value).startswith(f"doctor.toml:{line}: ")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("request:\n  - path: /a\n  - path: /b\n    method: FETCH\n", 4, "FETCH"),
        ("request:\n  - path: /a\n    weight: 0\n", 3, "weight"),
        ("request:\n  - path: /a\n  bad: [\n", 3, "invalid YAML"),
        ("- just\n- a list\n", 1, "mapping at the top level"),
    ],
)
def test_yaml_errors_name_the_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as info:
        parse_scenario(text, fmt="yaml", source="doctor.yaml")
    assert info.value.line == line


def test_load_scenario_reads_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(TOML)
    (tmp_path / "s.yml").write_text(YAML)
    assert (
        load_scenario(tmp_path / "s.toml").requests
        == parse_scenario(TOML, source=str(tmp_path / "s.toml")).requests
    )
    assert len(load_scenario(tmp_path / "s.yml").requests) == 2
    (tmp_path / "s.ini").write_text("")
    with pytest.raises(ScenarioError, match="unknown scenario format"):
        load_scenario(tmp_path / "s.ini")
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "missing.toml")


def test_captures_from_json_headers_and_status() -> None:
    body = b'{"data": {"items": [{"id": 1}, {"id": 2}]}}'
    assert parse_capture("x", "json:data.items.-1.id").extract(200, {}, body) == 2
    assert parse_capture("x", "json:$.data.items.5.id").extract(200, {}, body) is None
    assert parse_capture("x", "json:data.items.0.id").extract(200, {}, b"not json") is None
    assert parse_capture("x", "header:etag").extract(200, {"ETag": "v1"}, b"") == "v1"
    assert parse_capture("x", "status").extract(201, {}, b"") == 201
    with pytest.raises(ValueError, match="not 'json:"):
        parse_capture("x", "cookie:a")


def test_find_matches_templates_whatever_the_parameter_names() -> None:
    sc = parse_scenario('[[request]]\npath = "/books/{id}"\n')
    assert sc.find("GET", "/books/{book_id}") is sc.requests[0]
    assert sc.find("GET", "/books/{id:int}") is sc.requests[0]
    assert sc.find("POST", "/books/{id}") is None
    assert sc.find("GET", "/authors/{id}") is None

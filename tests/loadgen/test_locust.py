"""The Locust adapter: the generated locustfile and a real master + worker run."""

from __future__ import annotations

import ast
import importlib.util

import pytest

from lagless._scenario import parse_scenario
from lagless.loadgen._locust import (
    locust_commands,
    run_locust,
    spec_from_dict,
    spec_to_dict,
    write_locustfile,
)
from lagless.loadgen._run import BenchOptions
from tests.loadgen._apps import ControlledApp

SCENARIO = """\
headers = { Authorization = "Bearer t" }
[params]
n = [1, 2]
[[request]]
name = "list"
path = "/items"
weight = 2
capture = { item = "json:items.0.id" }
[[request]]
method = "POST"
path = "/items/{item}"
json = { n = "{n}" }
"""


def test_specs_survive_the_trip_into_a_locustfile(tmp_path) -> None:
    scenario = parse_scenario(SCENARIO, source="s.toml")
    for spec in scenario.requests:
        assert spec_from_dict(spec_to_dict(spec)) == spec
    path = tmp_path / "locustfile.py"
    write_locustfile(
        path,
        target="http://127.0.0.1:1",
        plan=list(scenario.requests),
        scenario=scenario,
        rate=50,
        users=5,
        duration=3,
        warmup=2,
        workers=2,
    )
    source = path.read_text()
    ast.parse(source)
    assert "class LaglessUser(FastHttpUser)" in source
    assert "Bearer t" in source


def test_locust_command_lines() -> None:
    master, worker = locust_commands(
        "lf.py", host="http://h:1", users=20, workers=3, run_time=7.4, port=5599
    )
    assert master[master.index("--expect-workers") + 1] == "3"
    assert master[master.index("--run-time") + 1] == "7s"
    assert "--headless" in master and "--master" in master
    assert worker[worker.index("--master-port") + 1] == "5599"
    assert "--worker" in worker


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="Locust not installed")
def test_a_distributed_locust_run_reports_in_lagless_format(serve) -> None:
    app = ControlledApp()
    url = serve(app)
    scenario = parse_scenario('[[request]]\npath = "/items"\n[[request]]\npath = "/"\n')
    options = BenchOptions(rate=60, duration=1.0, warmup=0.0, users=6, scenario=scenario)
    result = run_locust(url, options, workers=1)
    assert result.mode == "locust"
    assert set(result.routes) == {"GET /items", "GET /"}
    total = result.total
    # 60/s for 1 s measured; pacing starts are staggered, so allow some slack.
    assert 40 <= total.requests <= 70
    assert total.error_count == 0
    assert total.histogram.count == total.requests
    assert result.generator.dispatch_lateness.count == total.requests
    assert any("Locust's own count" in n for n in result.notes)

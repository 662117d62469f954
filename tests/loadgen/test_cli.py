"""``lagless bench`` end to end on in-process apps (no server), exit codes included."""

from __future__ import annotations

import json

import pytest

from lagless.cli import main
from lagless.loadgen import bench, load_result
from tests.loadgen._apps import wsgi_app
from tests.loadgen._synthetic import result

APP = "tests.loadgen._apps:app"
SLOW = "tests.loadgen._apps:slow_app"
# In-process runs share the CPU with the app (and this machine with other jobs): judge the
# generator leniently here; saturation itself is tested with an injected clock.
QUICK = ["--rate", "200", "-d", "0.5", "--warmup", "0", "--quiet", "--late-tolerance", "500"]


def _scenario(tmp_path, text: str = '[[request]]\npath = "/"\n') -> str:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return str(path)


def test_bench_writes_json_html_and_svg(tmp_path, capsys) -> None:
    out = tmp_path / "r.json"
    html = tmp_path / "r.html"
    svg = tmp_path / "r.svg"
    outputs = ["--json", str(out), "--html", str(html), "--svg", str(svg)]
    code = main(
        [
            "bench",
            APP,
            *QUICK,
            "--scenario",
            _scenario(tmp_path),
            *outputs,
            "--label",
            "quick <run>",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "GET /" in text and "p99" in text
    r = load_result(out)
    assert r.routes["GET /"].requests == 100
    assert r.mode == "open" and r.rate == 200
    page = html.read_text()
    assert page.count("<svg") >= 2
    assert "quick &lt;run&gt;" in page and "quick <run>" not in page
    assert "<script" not in page and "https://" not in page  # self-contained
    assert svg.read_text().startswith("<svg")


def test_budget_exit_codes(tmp_path) -> None:
    scenario = _scenario(tmp_path)
    ok = tmp_path / "ok.toml"
    ok.write_text("[defaults]\np50_ms = 5000\nerror_rate = 0.01\n")
    broken = tmp_path / "broken.toml"
    broken.write_text('[routes."GET /"]\np50_ms = 0.0001\n')
    assert main(["bench", APP, *QUICK, "--scenario", scenario, "--budget", str(ok)]) == 0
    assert main(["bench", APP, *QUICK, "--scenario", scenario, "--budget", str(broken)]) == 1


def test_an_invalid_run_exits_3(tmp_path, capsys) -> None:
    # A tolerance of 0 ms: every dispatch is "late", as with a saturated generator.
    args = ["bench", APP, "--rate", "200", "-d", "0.3", "--warmup", "0", "--quiet"]
    code = main([*args, "--late-tolerance", "0", "--scenario", _scenario(tmp_path)])
    assert code == 3
    assert "INVALID RUN" in capsys.readouterr().out


def test_scenario_errors_name_file_and_line(tmp_path, capsys) -> None:
    bad = _scenario(
        tmp_path, '[[request]]\npath = "/"\n\n[[request]]\nmethod = "FETCH"\npath = "/"\n'
    )
    assert main(["bench", APP, *QUICK, "--scenario", bad]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5: unknown HTTP method 'FETCH'" in err


def test_budget_file_errors_are_reported_before_the_run(tmp_path, capsys) -> None:
    budgets = tmp_path / "b.toml"
    budgets.write_text("[defaults]\np95_ms = 10\nmax_ms = 5\n")
    assert main(["bench", APP, *QUICK, "--budget", str(budgets)]) == 2
    assert f"{budgets}:3: max_ms is not a budget" in capsys.readouterr().err


def test_baseline_regression_exits_1(tmp_path, capsys) -> None:
    fast = result({"GET /": [0.05] * 5000}, label="fast baseline", rate=200)
    base = tmp_path / "base.json"
    fast.write_json(base)
    code = main(["bench", SLOW, *QUICK, "--scenario", _scenario(tmp_path), "--baseline", str(base)])
    assert code == 1
    assert "regressed" in capsys.readouterr().out


def test_unlabelled_baseline_is_named_by_its_file_and_units_are_written(tmp_path, capsys) -> None:
    """Both runs usually share a target: the baseline is named by its file, so the reports
    do not show two sections and two plot lines named alike; and no header says "ms" over a
    value printed in seconds."""
    first = tmp_path / "main.json"
    html = tmp_path / "r.html"
    budgets = tmp_path / "b.toml"
    budgets.write_text('[defaults]\n"p99.9_ms" = 1500\n')
    scenario = _scenario(tmp_path)
    assert main(["bench", APP, *QUICK, "--scenario", scenario, "--json", str(first)]) == 0
    capsys.readouterr()
    args = ["--baseline", str(first), "--html", str(html), "--budget", str(budgets)]
    assert main(["bench", APP, *QUICK, "--scenario", scenario, *args]) == 1  # too few samples
    out = capsys.readouterr().out
    assert f"{APP} against baseline main.json" in " ".join(out.split())
    assert "p99.9 ≤ 1.50 s" in out and "s ms" not in out
    page = html.read_text()
    assert "<h2>main.json</h2>" in page and f"<h2>{APP}</h2>" in page
    assert "p50 ms" not in page and "p99.9 ≤ 1.50 s" in page
    assert " ms</td>" in page  # latencies carry their unit
    assert load_result(first).label == APP  # the file itself is not rewritten


def test_interleaved_ab_finds_the_slower_target(tmp_path) -> None:
    out = tmp_path / "ab.json"
    args = ["bench", APP, "--compare-target", SLOW, "--rate", "100", "-d", "0.6", "--rounds", "2"]
    args += ["--warmup", "0", "--quiet", "--late-tolerance", "500", "--json", str(out)]
    code = main([*args, "--scenario", _scenario(tmp_path)])
    assert code == 1
    data = json.loads(out.read_text())
    assert data["comparison"]["verdict"] == "regressed"
    assert data["comparison"]["total"]["p_value"] < 0.01
    assert data["rounds"] == 2


def test_usage_errors() -> None:
    assert main(["bench", APP, "--quiet"]) == 2  # neither --rate nor --users


def test_discovery_without_a_scenario() -> None:
    fastapi = pytest.importorskip("fastapi")
    api = fastapi.FastAPI()

    @api.get("/things")
    async def things() -> dict[str, int]:
        return {"n": 1}

    @api.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @api.post("/things")
    async def create() -> dict[str, int]:
        return {"id": 2}

    r = bench(api, rate=100, duration=0.3, late_tolerance_ms=500)
    assert list(r.routes) == ["GET /things"]
    assert r.routes["GET /things"].requests == 30
    assert any("POST /things" in n and "not a safe method" in n for n in r.notes)
    assert any("thing_id" in n for n in r.notes)


def test_wsgi_app_in_process() -> None:
    r = bench(wsgi_app, rate=100, duration=0.3, late_tolerance_ms=500)
    assert r.routes["GET /"].requests == 30
    assert r.routes["GET /"].statuses[200] == 30
    assert r.routes["GET /"].bytes_in == 30 * len(b'{"path": "/"}')


def test_progress_hook_and_live_bar() -> None:
    import io

    from rich.console import Console

    from lagless.loadgen._report import live_progress

    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    snapshots = []
    with live_progress(console, True) as bar:
        assert bar is not None

        def hook(snap) -> None:
            snapshots.append(snap)
            bar(snap)

        bench(wsgi_app, rate=100, duration=1.2, late_tolerance_ms=500, progress=hook)
    assert len(snapshots) >= 3
    last = snapshots[-1]
    assert last.sent >= 100 and last.errors == 0 and not last.warming_up
    assert any(s.rate > 0 and s.p50_ms > 0 for s in snapshots)
    assert "req/s" in console.file.getvalue()
    with live_progress(console, False) as none:
        assert none is None


async def _broken_app(scope, receive, send) -> None:
    if scope["type"] != "http":
        raise RuntimeError("no lifespan")
    if scope["path"] == "/half":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        raise ValueError("boom")
    if scope["path"] == "/after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        raise ValueError("late")
    raise ValueError("boom")


def test_in_process_app_errors_are_recorded() -> None:
    from lagless._scenario import parse_scenario

    scenario = parse_scenario(
        '[[request]]\npath = "/"\n[[request]]\npath = "/half"\n[[request]]\npath = "/after"\n'
    )
    r = bench(_broken_app, rate=60, duration=0.5, scenario=scenario, late_tolerance_ms=500)
    assert set(r.routes["GET /"].errors) == {"app raised ValueError: boom"}
    assert set(r.routes["GET /half"].errors) == {"app raised ValueError: boom"}
    after = r.routes["GET /after"]
    assert after.error_count == 0 and after.statuses[200] == after.requests > 0

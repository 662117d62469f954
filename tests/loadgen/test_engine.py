"""The load loops against a real server on 127.0.0.1: schedule accuracy, coordinated omission."""

from __future__ import annotations

import pytest

from lagless._scenario import parse_scenario
from lagless.loadgen import bench
from tests.loadgen._apps import ControlledApp

# A shared 2-core machine delays any process now and then; the tests judge the generator's
# schedule, so they allow generous lateness and only look at relations between runs.
LENIENT = {"late_tolerance_ms": 200.0, "max_late_fraction": 0.5}


def _scenario(path: str) -> object:
    return parse_scenario(f'[[request]]\npath = "{path}"\n')


def test_requests_start_on_schedule_while_the_server_is_slow(serve) -> None:
    app = ControlledApp()
    url = serve(app)
    # 80 req/s for 1 s against a route that answers nothing until all 80 requests are in flight
    # at once: a closed loop (or an open loop that waited for responses) never gets there, and
    # the server gives up after 10 s. The verdict is the server's count, not a timing.
    app.arm_gate(80)
    result = bench(url, rate=80, duration=1.0, scenario=_scenario("/gate"), **LENIENT)
    stats = result.routes["GET /gate"]
    assert app.max_in_flight == 80
    assert stats.requests == 80
    assert stats.statuses[200] == 80
    send = result.generator.send_lateness
    assert send.count == 80
    # Latency counts from each request's scheduled start: the first, due at 0 s, was answered
    # only once the 80th (due at 79/80 s) arrived, so it shows at least 987.5 ms (less the
    # histogram's ~1% bucket error), however early or late the sends actually went out.
    assert stats.histogram.max >= 0.98 * 987.5
    assert result.generator.queued_for_connection == 0


def test_closed_loop_waits_for_the_server(serve) -> None:
    app = ControlledApp(slow_s=0.1)
    url = serve(app)
    result = bench(url, users=2, duration=0.6, scenario=_scenario("/slow"), **LENIENT)
    stats = result.routes["GET /slow"]
    # Two users back to back on a 100 ms route: at most ~2 requests per 100 ms.
    assert 4 <= stats.requests <= 14
    assert result.mode == "closed"
    assert result.generator.dispatch_lateness.count == 0


@pytest.mark.slow
def test_a_stall_shows_in_the_open_loop_p99_not_in_the_closed_loop(serve) -> None:
    app = ControlledApp()
    url = serve(app)
    scenario = _scenario("/")
    app.arm_stall(after=60, seconds=1.0)
    open_run = bench(url, rate=100, duration=2.5, scenario=scenario, **LENIENT)
    app.arm_stall(after=60, seconds=1.0)
    closed = bench(url, users=2, duration=2.5, scenario=scenario, **LENIENT)
    o = open_run.routes["GET /"].histogram
    c = closed.routes["GET /"].histogram
    # Both runs met the stall: their worst request waited for it.
    assert o.max > 20 * o.quantile(0.5)
    assert c.max > 20 * c.quantile(0.5)
    # Open loop: every request due during the stall queued behind it (~100 of 250), so the
    # tail shows it. Closed loop: only the 2 requests in flight did, among thousands.
    assert o.quantile(0.99) > 0.5 * o.max
    assert o.quantile(0.9) > 10 * c.quantile(0.9)
    assert o.quantile(0.99) > 10 * c.quantile(0.99)
    assert c.count >= 200  # the closed loop made plenty of requests around the stall
    slow_open = o.count - o.count_le(100.0)
    slow_closed = c.count - c.count_le(100.0)
    assert slow_open >= 30
    assert slow_closed <= 4


def test_warmup_is_left_out(serve) -> None:
    app = ControlledApp()
    url = serve(app)
    result = bench(url, rate=100, duration=0.5, warmup=0.5, scenario=_scenario("/"), **LENIENT)
    assert result.routes["GET /"].requests == 50
    # The server saw the warm-up, the pre-flight and the measured requests.
    assert app.count == 100 + 1
    assert result.warmup_s == 0.5


def test_stages_ramp_the_rate(serve) -> None:
    url = serve(ControlledApp())
    result = bench(url, stages="0.5s:100,0.5s:100", scenario=_scenario("/"), **LENIENT)
    # Ramp 0 -> 100/s over 0.5 s (25 requests), then 100/s for 0.5 s (50).
    assert result.routes["GET /"].requests == 75
    assert result.stages == [(0.5, 0.0, 100.0), (0.5, 100.0, 100.0)]


def test_route_weights_and_discovery_errors(serve) -> None:
    url = serve(ControlledApp())
    scenario = parse_scenario(
        '[[request]]\npath = "/"\nweight = 3\n[[request]]\npath = "/missing"\nweight = 1\n'
    )
    result = bench(url, rate=400, duration=0.5, scenario=scenario, seed=3, **LENIENT)
    ok, missing = result.routes["GET /"], result.routes["GET /missing"]
    assert ok.requests + missing.requests == 200
    assert 0.6 < ok.requests / 200 < 0.9  # weight 3:1
    # A route that answers 404 is an error route in a scenario (it was asked for).
    assert missing.error_rate == 1.0
    assert missing.statuses[404] == missing.requests
    assert ok.error_count == 0
    assert ok.bytes_in == ok.requests * len(b'{"ok": true}')
    assert ok.bytes_out > 0


def test_captures_flow_from_earlier_responses(serve) -> None:
    app = ControlledApp()
    url = serve(app)
    scenario = parse_scenario(
        '[[request]]\npath = "/items"\ncapture = { item = "json:items.1.id" }\n'
        '[[request]]\npath = "/items/{item}"\n'
    )
    result = bench(url, rate=100, duration=0.3, scenario=scenario, **LENIENT)
    assert result.routes["GET /items/{item}"].error_count == 0
    assert "/items/42" in app.seen


def test_connection_refused_is_an_error_not_a_crash() -> None:
    import socket

    from lagless.errors import LaglessError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(LaglessError, match="failed before the run"):
        bench(f"http://127.0.0.1:{port}", rate=10, duration=0.2, scenario=_scenario("/"))

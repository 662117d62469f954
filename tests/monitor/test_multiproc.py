"""Several worker processes, one /metrics: real processes writing to a shared directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families

from lagless._runtime import Runtime
from lagless.monitor import Monitor
from tests.monitor._traces import make_trace

WORKER = textwrap.dedent(
    """
    import asyncio, os, sys
    import lagless
    from lagless._runtime import get_runtime
    from lagless.integrations.asgi import LaglessMiddleware
    from lagless.monitor import Monitor

    directory, n = sys.argv[1], int(sys.argv[2])
    rt = get_runtime()
    rt.configure(metrics=True, metrics_dir=directory)
    mon = Monitor(runtime=rt, background=False).install()

    async def app(scope, receive, send):
        scope["path_template"] = "/work/{n}"
        status = 500 if scope["path"].endswith("/0") else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = LaglessMiddleware(app)

    async def main():
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}
        async def send(message):
            pass
        for i in range(n):
            scope = {"type": "http", "method": "GET", "path": f"/work/{i}", "headers": []}
            await wrapped(scope, receive, send)

    asyncio.run(main())
    assert mon.shared.flush(force=True)
    print(os.getpid())
    """
)


def counts(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "lagless_http_request_duration_seconds_count":
                out[s.labels["route"]] = s.value
            if s.name == "lagless_http_requests_total" and s.labels["status_class"] == "5xx":
                out["5xx"] = out.get("5xx", 0) + s.value
    return out


def test_worker_processes_merge_exactly(tmp_path: Path, fresh_runtime: Runtime) -> None:
    sizes = [50, 120, 230]
    procs = [
        subprocess.run(
            [sys.executable, "-c", WORKER, str(tmp_path), str(n)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "LAGLESS_SERVER_TIMING": "0"},
            check=False,
        )
        for n in sizes
    ]
    for proc in procs:
        assert proc.returncode == 0, proc.stderr
    pids = {int(p.stdout.strip()) for p in procs}
    assert {f.name for f in tmp_path.glob("lagless-*.json")} == {f"lagless-{p}.json" for p in pids}
    fresh_runtime.configure(metrics=True, metrics_dir=str(tmp_path))
    mon = Monitor(runtime=fresh_runtime, background=False).install()
    mon.observe(make_trace("/work/{n}"))  # this process's own, live
    scraped = counts(mon.metrics().body.decode())
    assert scraped["/work/{n}"] == sum(sizes) + 1
    assert scraped["5xx"] == len(sizes)  # each worker's request to /work/0
    _stats, _browser, _samples, processes = mon.merged()
    assert processes == 4
    mon.uninstall()


def test_a_forked_worker_does_not_count_its_parents_requests(
    tmp_path: Path, fresh_runtime: Runtime
) -> None:
    fresh_runtime.configure(metrics=True, metrics_dir=str(tmp_path))
    mon = Monitor(runtime=fresh_runtime, background=False).install()
    for _ in range(5):
        fresh_runtime.finish_trace(make_trace("/a"))
    pid = os.fork()
    if pid == 0:  # the child: a worker forked after the app was loaded (gunicorn --preload)
        code = 1
        try:
            for _ in range(7):
                fresh_runtime.finish_trace(make_trace("/a"))
            code = 0 if mon.shared is not None and mon.shared.flush(force=True) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert counts(mon.metrics().body.decode())["/a"] == 12
    mon.uninstall()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


APP = textwrap.dedent(
    """
    import lagless
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from lagless.monitor import monitor

    async def item(request):
        return PlainTextResponse("ok")

    app = monitor(lagless.instrument(Starlette(routes=[Route("/items/{id}", item)])), metrics=True)
    """
)


@pytest.mark.slow
def test_uvicorn_workers_share_one_metrics_endpoint(tmp_path: Path) -> None:
    """uvicorn --workers 2: a scrape reaching either worker reports both workers' requests."""
    pytest.importorskip("uvicorn")
    (tmp_path / "mpapp.py").write_text(APP)
    shared = tmp_path / "metrics"
    shared.mkdir()
    port = _free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared), "PYTHONPATH": str(tmp_path)}
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "mpapp:app", "--workers", "2"),
            *("--port", str(port), "--host", "127.0.0.1", "--log-level", "warning"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=base, timeout=5) as client:
            while True:
                try:
                    client.get("/items/0")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.1)
            for i in range(1, 200):
                # A new connection each time, so the kernel spreads them over both workers.
                with httpx.Client(base_url=base, timeout=5) as one:
                    assert one.get(f"/items/{i}").status_code == 200
            seen: dict[str, Any] = {}
            while time.monotonic() < deadline:
                scraped = counts(client.get("/metrics").text)
                if scraped.get("/items/{id}") == 200:
                    seen = scraped
                    break
                time.sleep(0.25)  # other workers write their file once a second
            assert seen.get("/items/{id}") == 200, (tmp_path / "server.log").read_text()
        assert len(list(shared.glob("lagless-*.json"))) >= 2
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()

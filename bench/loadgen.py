"""``lagless bench``'s load generator, checked against wrk and Locust on this machine.

::

    python bench/loadgen.py                  # wrk agreement + throughput per core (~2 min)
    python bench/loadgen.py --quick          # shorter runs
    python bench/loadgen.py --client-compare # raw HTTP/1.1 client vs httpx, in one process
    python bench/loadgen.py --example        # README figures: example app, naive vs tuned

1. **Agreement with wrk.** One local server (a raw asyncio server in its own process whose
   responses wait a seeded log-normal delay, median 4 ms) is loaded in turn by ``wrk -t1 -cN
   --latency`` and by ``lagless bench --users N``, rounds interleaved. wrk is a closed loop
   (each connection sends, waits, sends again) and measures from the write; the closed-loop
   mode of lagless does the same, so this is the apples-to-apples comparison (plain wrk has no
   arrival rate; wrk2's ``-R`` is not packaged). Reported: the median over rounds of p50, p90
   and p99 from each tool and their ratio. Both run well under their ceilings here.
2. **Requests per CPU-second** of the generator process against a server that answers at once:
   ``lagless bench --users 64`` against a single-process Locust with ``FastHttpUser``
   (geventhttpclient) and no wait time, each in its own process. Each tool runs a short and a
   long run; the rate is the difference in completed requests over the difference in the
   process's CPU time (user + system, from ``wait4``), so start-up and imports cancel out.
   This is the highest rate one core can generate; the target is at least 2x Locust.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


# -- the server under load ---------------------------------------------------------------------


def serve(port: int, median_ms: float) -> None:
    """A raw asyncio HTTP/1.1 server: each response after a seeded log-normal delay."""
    rng = random.Random(42)
    body = b'{"ok": true}'
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            loop = asyncio.get_running_loop()
            while b"\r\n\r\n" in self.buf:
                _, self.buf = self.buf.split(b"\r\n\r\n", 1)
                if median_ms > 0:
                    delay = median_ms * rng.lognormvariate(0.0, 0.35) / 1000
                    loop.call_later(delay, self.t.write, response)  # type: ignore[attr-defined]
                else:
                    self.t.write(response)  # type: ignore[attr-defined]

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Proto, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Server:
    def __init__(self, median_ms: float) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [PY, __file__, "--serve", str(self.port), "--median-ms", str(median_ms)]
        )
        wait_for_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# -- running a tool in its own process and measuring its CPU -------------------------------------


def run_measured(cmd: list[str], cwd: str | None = None) -> tuple[str, float]:
    """Run ``cmd``; its stdout and the CPU seconds (user + system) it used."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, cwd=cwd)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return text, usage.ru_utime + usage.ru_stime


def lagless_run(url: str, users: int, seconds: float) -> tuple[dict, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [PY, "-m", "lagless", "bench", url, "--users", str(users), "-d", f"{seconds}s"]
        cmd += ["--warmup", "0", "--quiet", "--json", str(out)]
        _text, cpu = run_measured(cmd)
        return json.loads(out.read_text()), cpu


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_run(url: str, connections: int, seconds: float) -> tuple[dict[str, float], int]:
    """wrk's p50/p90/p99 in ms and its request count."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url + "/"]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    pcts: dict[str, float] = {}
    for pct, value, unit in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        pcts[f"p{pct}"] = float(value) * _WRK_UNITS[unit]
    count = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    return pcts, count


_LOCUSTFILE = """
from locust import FastHttpUser, constant, task

class Hammer(FastHttpUser):
    wait_time = constant(0)

    @task
    def root(self):
        self.client.get("/")
"""


def locust_run(url: str, users: int, seconds: float) -> tuple[int, float]:
    """Requests completed and CPU seconds of a single-process Locust run."""
    with tempfile.TemporaryDirectory() as tmp:
        lf = Path(tmp) / "locustfile.py"
        lf.write_text(_LOCUSTFILE)
        cmd = [PY, "-m", "locust", "-f", str(lf), "--headless", "-u", str(users)]
        cmd += ["-r", str(users), "-t", f"{seconds:g}s", "--host", url, "--json", "--only-summary"]
        cmd += ["--loglevel", "ERROR"]
        text, cpu = run_measured(cmd, cwd=tmp)
    start = text.index("[")
    stats = json.loads(text[start : text.rindex("]") + 1])
    return sum(int(s["num_requests"]) for s in stats), cpu


# -- sections --------------------------------------------------------------------------------


def agreement(rounds: int, seconds: float, connections: int) -> None:
    print(f"\n## Agreement with wrk (closed loop, {connections} connections, {rounds} rounds)")
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): section skipped")
        return
    server = Server(median_ms=4.0)
    try:
        wrk_runs: list[dict[str, float]] = []
        lag_runs: list[dict[str, float]] = []
        wrk_run(server.url, connections, 1)  # warm-up
        for r in range(rounds):
            order = ("wrk", "lagless") if r % 2 == 0 else ("lagless", "wrk")
            for tool in order:
                if tool == "wrk":
                    wrk_runs.append(wrk_run(server.url, connections, seconds)[0])
                else:
                    data, _cpu = lagless_run(server.url, connections, seconds)
                    summary = next(iter(data["routes"].values()))["summary_ms"]
                    lag_runs.append({k: summary[k] for k in ("p50", "p90", "p99")})
        print("| percentile | wrk ms | lagless ms | lagless / wrk |")
        print("|---|---:|---:|---:|")
        for key in ("p50", "p90", "p99"):
            w = statistics.median(x[key] for x in wrk_runs)
            lag = statistics.median(x[key] for x in lag_runs)
            print(f"| {key} | {w:.2f} | {lag:.2f} | {lag / w:.3f} |")
    finally:
        server.stop()


def per_core(short: float, long: float, users: int, rounds: int) -> None:
    print(f"\n## Requests per CPU-second of the generator ({users} users, {rounds} rounds)")
    server = Server(median_ms=0.0)
    try:
        lag_rates, loc_rates = [], []
        for r in range(rounds):
            for tool in ("lagless", "locust") if r % 2 == 0 else ("locust", "lagless"):
                if tool == "lagless":
                    a, cpu_a = lagless_run(server.url, users, short)
                    b, cpu_b = lagless_run(server.url, users, long)
                    na = sum(x["requests"] for x in a["routes"].values())
                    nb = sum(x["requests"] for x in b["routes"].values())
                    lag_rates.append((nb - na) / (cpu_b - cpu_a))
                else:
                    na, cpu_a = locust_run(server.url, users, short)
                    nb, cpu_b = locust_run(server.url, users, long)
                    loc_rates.append((nb - na) / (cpu_b - cpu_a))
        lag, loc = statistics.median(lag_rates), statistics.median(loc_rates)
        print("| generator | requests per CPU-second (median) | rounds |")
        print("|---|---:|---|")
        print(
            f"| lagless bench (asyncio, raw HTTP/1.1) | {lag:,.0f} | "
            + ", ".join(f"{x:,.0f}" for x in lag_rates)
            + " |"
        )
        print(
            f"| Locust FastHttpUser (gevent) | {loc:,.0f} | "
            + ", ".join(f"{x:,.0f}" for x in loc_rates)
            + " |"
        )
        ok = lag >= 2 * loc
        print(f"\nlagless / Locust: {lag / loc:.2f}x (target >= 2x: {'met' if ok else 'MISSED'})")
    finally:
        server.stop()


def client_compare(seconds: float, users: int) -> None:
    """The raw client against httpx.AsyncClient, same process, same closed loop."""
    import httpx

    from lagless.loadgen._http import HttpPool

    print(f"\n## HTTP client inside the generator ({users} concurrent, {seconds:g} s each)")
    server = Server(median_ms=0.0)

    async def with_httpx(users: int) -> tuple[int, float]:
        n = 0
        limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
        async with httpx.AsyncClient(base_url=server.url, limits=limits) as client:
            end = time.perf_counter() + seconds
            cpu0 = time.thread_time()

            async def user() -> None:
                nonlocal n
                while time.perf_counter() < end:
                    (await client.get("/")).read()
                    n += 1

            await asyncio.gather(*(user() for _ in range(users)))
            return n, time.thread_time() - cpu0

    async def with_raw(users: int) -> tuple[int, float]:
        n = 0
        pool = HttpPool(server.url, max_connections=users)
        payload = pool.encode("GET", "/")
        loop = asyncio.get_running_loop()
        end = time.perf_counter() + seconds
        cpu0 = time.thread_time()

        async def user() -> None:
            nonlocal n
            while time.perf_counter() < end:
                fut = loop.create_future()
                pool.submit(payload, head=False, keep=False, done=lambda *a, f=fut: f.set_result(a))
                await fut
                n += 1

        await asyncio.gather(*(user() for _ in range(users)))
        pool.close()
        return n, time.thread_time() - cpu0

    try:
        arms = (
            ("httpx.AsyncClient", with_httpx, 1),
            ("httpx.AsyncClient", with_httpx, users),
            ("lagless raw client", with_raw, 1),
            ("lagless raw client", with_raw, users),
        )
        for name, fn, conc in arms * 2:
            n, cpu = asyncio.run(fn(conc))
            print(
                f"{name:20s} x{conc:<3d} {n / seconds:9,.0f} req/s  "
                f"{n / cpu:9,.0f} req per CPU-second"
            )
    finally:
        server.stop()


def example(rate: float, seconds: float, warmup: float) -> None:
    """The README's figures: the bundled example app, naive vs tuned, same arrival rate."""
    from lagless.loadgen import load_result
    from lagless.loadgen._html import write_svg
    from lagless.loadgen._report import fmt_ms

    results = []
    for mode in ("naive", "tuned"):
        port = free_port()
        proc = subprocess.Popen(
            [PY, "-m", "lagless", "example", "serve", "--mode", mode, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # its slow-request log lines
        )
        try:
            wait_for_port(port, timeout=60)
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "r.json"
                cmd = [PY, "-m", "lagless", "bench", f"http://127.0.0.1:{port}", "--rate"]
                cmd += [f"{rate:g}", "-d", f"{seconds:g}s", "--warmup", f"{warmup:g}s"]
                cmd += ["--quiet", "--json", str(out), "--label", mode]
                subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
                results.append(load_result(out))
        finally:
            proc.terminate()
            proc.wait(10)
    svg = ROOT / "docs" / "bench-example.svg"
    write_svg(svg, results)
    print(f"\n## Example app at {rate:g} req/s for {seconds:g} s (open loop), plot: {svg}")
    print("| mode | requests | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | valid |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        t = r.total
        h = t.histogram
        cells = " | ".join(fmt_ms(h.quantile(q)) for q in (0.5, 0.9, 0.99, 0.999))
        print(
            f"| {r.label} | {t.requests:,} | {cells} | {fmt_ms(h.max)} | {t.error_count} | "
            f"{'yes' if r.valid else 'no: ' + '; '.join(r.invalid_reasons)} |"
        )
    print("\nper route:")
    for r in results:
        for s in r.routes.values():
            h = s.histogram
            print(
                f"  {r.label:6s} {s.name:32s} n={s.requests:6d} p50={fmt_ms(h.quantile(0.5)):>7} "
                f"p99={fmt_ms(h.quantile(0.99)):>7} errors={s.error_count}"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="shorter runs, fewer rounds")
    p.add_argument("--client-compare", action="store_true", help="raw client vs httpx only")
    p.add_argument("--example", action="store_true", help="example app naive vs tuned only")
    p.add_argument("--rate", type=float, default=5.0, help="--example arrival rate")
    p.add_argument("--duration", type=float, default=60.0, help="--example measured seconds")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--median-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.median_ms)
        return
    if args.client_compare:
        client_compare(3.0 if args.quick else 5.0, 32)
        return
    if args.example:
        example(args.rate, args.duration, warmup=5.0)
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    if args.quick:
        agreement(rounds=2, seconds=3, connections=4)
        per_core(short=2, long=5, users=64, rounds=1)
    else:
        agreement(rounds=4, seconds=5, connections=4)
        per_core(short=2, long=8, users=64, rounds=3)


if __name__ == "__main__":
    main()

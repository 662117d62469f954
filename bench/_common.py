"""Measuring helpers shared by the benchmarks: A/B interleaving, medians, loopback load, and an
OpenTelemetry SDK set up the way production would run it.

Every comparison is made inside one process run, arms interleaved round by round (the order
rotated each round) so drift in the machine's load hits every arm alike, and reported as the
median over rounds. The cost an arm *adds* is the median of its per-round difference to the
baseline measured in the same round, which cancels the slow swings a shared machine has.
"""

from __future__ import annotations

import gc
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Arm = Callable[[int], int]  # runs n operations, returns the elapsed nanoseconds


@dataclass
class Result:
    """Per-operation microseconds of each arm, one value per round."""

    rounds: dict[str, list[float]] = field(default_factory=dict)

    def median(self, arm: str) -> float:
        return statistics.median(self.rounds[arm])

    def added(self, arm: str, base: str) -> float:
        """Median over rounds of ``arm - base`` measured in the same round."""
        pairs = zip(self.rounds[arm], self.rounds[base], strict=True)
        return statistics.median(a - b for a, b in pairs)


def interleave(arms: dict[str, Arm], *, n: int, repeats: int, warmup: int = 1) -> Result:
    """Run each arm ``n`` operations per round for ``repeats`` rounds, rotating the order."""
    names = list(arms)
    for _ in range(warmup):
        for name in names:
            arms[name](max(n // 4, 1))
    result = Result({name: [] for name in names})
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            elapsed = arms[name](n)
            result.rounds[name].append(elapsed / n / 1000)
    return result


def alternate(
    arms: dict[str, Callable[[], Any]],
    *,
    iterations: int,
    loop: Any = None,
    warmup: int = 200,
) -> Result:
    """One operation of each arm per iteration, the order rotated each time; each arm's
    callable runs one operation and returns its own elapsed nanoseconds (or, with ``loop``,
    an awaitable of them). Call-by-call alternation leaves load bursts no room to fall on one
    arm more than another, and ``Result.added`` pairs operations of the same iteration."""
    names = list(arms)

    async def run_async(count: int, out: dict[str, list[float]] | None) -> None:
        for i in range(count):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                elapsed = await arms[name]()
                if out is not None:
                    out[name].append(elapsed / 1000)

    def run_sync(count: int, out: dict[str, list[float]] | None) -> None:
        for i in range(count):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                elapsed = arms[name]()
                if out is not None:
                    out[name].append(elapsed / 1000)

    result = Result({name: [] for name in names})
    gc.collect()
    if loop is not None:
        loop.run_until_complete(run_async(warmup, None))
        loop.run_until_complete(run_async(iterations, result.rounds))
    else:
        run_sync(warmup, None)
        run_sync(iterations, result.rounds)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start within {timeout:.0f}s")


# -- loopback load -------------------------------------------------------------------------------

WRK = shutil.which("wrk")
_RPS = re.compile(r"Requests/sec:\s*([\d.]+)")


def _load_with_wrk(url: str, seconds: float, connections: int) -> float:
    out = subprocess.run(
        # wrk takes whole seconds only.
        [WRK or "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    match = _RPS.search(out)
    if match is None:
        raise RuntimeError(f"could not read wrk's output:\n{out}")
    return float(match.group(1))


_CLIENT = r"""
import socket, sys, time
host, port, path, seconds = "127.0.0.1", int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
sock = socket.create_connection((host, port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# A server that stops answering fails the run with a clear error, not a 30 s hang.
sock.settimeout(10)
buf = b""
done = 0
deadline = time.perf_counter() + seconds
start = time.perf_counter()
while time.perf_counter() < deadline:
    sock.sendall(request)
    while True:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buf[:head_end].lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15:].split(b"\r\n", 1)[0]) if i >= 0 else 0
            total = head_end + 4 + length
            if len(buf) >= total:
                buf = buf[total:]
                break
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("server closed the connection")
        buf += chunk
    done += 1
print(done / (time.perf_counter() - start))
"""


def _load_with_python(port: int, path: str, seconds: float) -> float:
    """A keep-alive client in its own process (so it does not share the server's GIL)."""
    out = subprocess.run(
        [sys.executable, "-c", _CLIENT, str(port), path, str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    return float(out.strip())


def load(port: int, path: str, seconds: float, *, connections: int = 4) -> float:
    """Requests per second a server on ``port`` sustains for ``path`` over loopback.

    Uses ``wrk`` when installed; otherwise a small keep-alive client in a subprocess (one
    connection, so its own cost sets a lower ceiling: ratios stay comparable, absolute
    figures do not)."""
    if WRK:
        return _load_with_wrk(f"http://127.0.0.1:{port}{path}", seconds, connections)
    return _load_with_python(port, path, seconds)


def load_client_name() -> str:
    return "wrk -t1 -c4" if WRK else "python keep-alive client (wrk not installed)"


# -- OpenTelemetry -------------------------------------------------------------------------------


def otel_tracer_provider() -> tuple[Any, Callable[[], int]] | None:
    """A TracerProvider as production runs it (SDK, batch processor) whose exporter drops
    spans, so the comparison counts instrumentation, not network; and a counter of spans
    exported, to check the arm really traced. ``None`` when the SDK is not installed."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError:
        return None

    exported = [0]

    class Discard(SpanExporter):  # type: ignore[misc]
        def export(self, spans: Any) -> Any:
            exported[0] += len(spans)
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            return None

    provider = TracerProvider()
    processor = BatchSpanProcessor(Discard())
    provider.add_span_processor(processor)

    def count() -> int:
        processor.force_flush()
        return exported[0]

    return provider, count


# -- output --------------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "[dim]n/a[/dim]"
    return "[green]ok[/green]" if ok else "[red]MISSED[/red]"

"""Fixtures for the cache tests: unique Redis key prefixes (other suites share the server), a
Redis server of our own that a test may stop and restart, Django settings that coexist with the
other suites' (``if not settings.configured``; each Django test overrides what it needs), and a
fake clock."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from lagless.cache._backend import reset_backend_errors

#: Per-call timeout for backends on the shared Redis server. The backend's default (0.25 s) is
#: an outage bound; on a loaded CI machine one call can take longer, which would fail open
#: (a miss instead of a hit) and abandon a half-made connection (a ResourceWarning that
#: surfaces as an error in a later test). Tests about timeouts set their own.
REDIS_TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def _fresh_error_counters() -> Iterator[None]:
    reset_backend_errors()
    yield
    reset_backend_errors()


class FakeClock:
    """Unix time that moves only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def prefix() -> str:
    return f"lagless-test:{os.getpid()}:{os.urandom(4).hex()}:"


@pytest.fixture
def redis_cleanup(redis_url: str, prefix: str) -> Iterator[str]:
    """``prefix``, and every key under it deleted afterwards."""
    import redis

    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*", count=500):
        client.delete(key)
    client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server subprocess on a free port that the test may stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = OwnRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()

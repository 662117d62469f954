"""Reaching the real PostgreSQL, Redis and MariaDB servers the integration tests talk to.

A test that needs a server skips with the reason when it is unreachable, except under
``LAGLESS_REQUIRE_SERVICES=1`` (set by .ci/run), where it fails instead: CI must never pass by
skipping what it was meant to test.
"""

from __future__ import annotations

import os
import socket

import pytest

REQUIRE = os.environ.get("LAGLESS_REQUIRE_SERVICES") == "1"

PG_DSN = os.environ.get("LAGLESS_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LAGLESS_REDIS_URL", "redis://127.0.0.1:6379/0")
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def need(service: str, host: str, port: int) -> None:
    """Skip (or, under LAGLESS_REQUIRE_SERVICES=1, fail) when ``service`` is unreachable."""
    if reachable(host, port):
        return
    message = f"{service} is not reachable on {host}:{port}"
    if REQUIRE:
        pytest.fail(f"{message} and LAGLESS_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)

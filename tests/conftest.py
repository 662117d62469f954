from __future__ import annotations

from collections.abc import Iterator

import pytest

import lagless._runtime as runtime_mod
from lagless._config import load_config
from lagless._guard import reset_internal_errors
from lagless._runtime import Runtime
from lagless.integrations import uninstall_integrations
from tests._services import MYSQL, PG_DSN, REDIS_URL, need

#: pytester drives the pytest plugin's tests (tests/test_pytest_plugin.py).
pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[Runtime]:
    """Each test gets a runtime with default settings (no pyproject, no environment) and no
    integration left installed by a previous test."""
    rt = Runtime(load_config(pyproject=False, env={}))
    previous = runtime_mod._runtime
    runtime_mod._runtime = rt
    reset_internal_errors()
    try:
        yield rt
    finally:
        runtime_mod._runtime = previous
        uninstall_integrations()


@pytest.fixture
def postgres_dsn() -> str:
    need("PostgreSQL", "127.0.0.1", 5432)
    return PG_DSN


@pytest.fixture
def redis_url() -> str:
    need("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def mysql_params() -> dict[str, object]:
    need("MariaDB", "127.0.0.1", 3306)
    return dict(MYSQL)

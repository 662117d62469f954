from __future__ import annotations

from collections.abc import Iterator

import pytest

from lagless._guard import internal_errors
from lagless._runtime import Runtime
from lagless._spans import _suppress_db
from lagless._trace import Trace
from lagless.integrations import get_integration

from ._helpers import tracing


@pytest.fixture
def trace() -> Iterator[Trace]:
    """A trace made current for the test's context (async tests run in a copy of it)."""
    with tracing() as t:
        yield t


@pytest.fixture
def record_params(fresh_runtime: Runtime) -> Runtime:
    fresh_runtime.configure(record_params=True)
    return fresh_runtime


@pytest.fixture(autouse=True)
def _no_internal_errors_and_no_leaked_suppression() -> Iterator[None]:
    """Every test here must leave lagless error-free and the driver suppression switched off."""
    yield
    assert internal_errors == {}
    assert _suppress_db.get() is False


def install(*names: str) -> None:
    for name in names:
        get_integration(name).install()

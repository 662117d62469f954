from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests._serve import serve_fixture


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(app) -> base URL``: uvicorn on a free loopback port, stopped afterwards."""
    yield from serve_fixture()


@pytest.fixture(scope="session")
def example_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One seeded-database cache for the session (building it takes about a second)."""
    return str(tmp_path_factory.mktemp("lagless-cache"))

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests._serve import serve_fixture


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(app) -> base URL``: uvicorn on a free loopback port, stopped afterwards."""
    yield from serve_fixture()

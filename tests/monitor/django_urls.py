"""URLconf for the monitor's Django tests; each test fills ``urlpatterns``."""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []

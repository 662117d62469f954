"""Keep lagless's own failures out of the user's request.

Every wrapper lagless puts around user code runs its own bookkeeping inside :func:`guarded` or
a ``try/except Exception`` that calls :func:`report_internal_error`: a bug in lagless is logged
(at most once per interval per site, so a broken hot path cannot flood the log) and counted, and
the user's call goes on as if lagless were not there.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

logger = logging.getLogger("lagless")

P = ParamSpec("P")
R = TypeVar("R")

LOG_INTERVAL_S = 60.0

_lock = threading.Lock()
_last_logged: dict[str, float] = {}
#: Internal errors caught so far, by site. Read by tests and exported as a metric.
internal_errors: dict[str, int] = {}


def report_internal_error(site: str, exc: BaseException | None = None) -> None:
    """Count an error raised inside lagless at ``site`` and log it, rate-limited."""
    now = time.monotonic()
    with _lock:
        internal_errors[site] = internal_errors.get(site, 0) + 1
        last = _last_logged.get(site)
        if last is not None and now - last < LOG_INTERVAL_S:
            return
        _last_logged[site] = now
    logger.error("lagless: internal error in %s; the request was not affected", site, exc_info=exc)


def reset_internal_errors() -> None:
    """Forget counted errors and log intervals (for tests)."""
    with _lock:
        internal_errors.clear()
        _last_logged.clear()


def guarded(site: str, default: Any = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a lagless-internal function so an exception in it is reported, not raised."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                report_internal_error(site, exc)
                return default  # type: ignore[no-any-return]

        return wrapper

    return decorate

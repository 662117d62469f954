"""A circuit breaker, so a dead or slow cache backend is not hammered by every request.

Closed: calls go through; ``failure_threshold`` consecutive failures open it. Open: calls are
refused at once (the caller serves from the origin) for ``reset_after`` seconds. Then one trial
call is let through (half-open): success closes the breaker, failure opens it again. This is how
the cache recovers by itself when Redis comes back, without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from threading import Lock
from typing import Literal

from lagless.errors import LaglessError

State = Literal["closed", "open", "half-open"]


class BackendUnavailable(LaglessError):
    """Raised instead of calling a backend whose circuit breaker is open."""


class CircuitBreaker:
    """Count consecutive failures and refuse calls for a while after too many.

    ``clock`` (monotonic seconds) is injectable so tests can move time without sleeping.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_after <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_after > 0")
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._state: State = "closed"
        self._trial_running = False
        self._lock = Lock()
        #: Times the breaker opened (a metric: how often the backend went away).
        self.opened = 0

    @property
    def state(self) -> State:
        return self._state

    def allow(self) -> bool:
        """May a call go to the backend now? Cheap when closed (one attribute read)."""
        if self._state == "closed":
            return True
        with self._lock:
            if self._state == "open":
                if self._clock() - self._opened_at < self.reset_after:
                    return False
                self._state = "half-open"
                self._trial_running = False
            if self._trial_running:
                return False
            self._trial_running = True
            return True

    def success(self) -> None:
        if self._state == "closed" and self._failures == 0:
            return
        with self._lock:
            self._failures = 0
            self._state = "closed"
            self._trial_running = False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == "half-open" or self._failures >= self.failure_threshold:
                if self._state != "open":
                    self.opened += 1
                self._state = "open"
                self._opened_at = self._clock()
                self._trial_running = False

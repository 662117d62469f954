"""Event-loop lag: how long the asyncio loop was unable to run anything while a request was in
flight, the direct symptom of blocking calls in async code.

A :class:`LoopLagProbe` is a task that sleeps ``interval_ms`` at a time and notes how late each
wake-up comes; a late wake-up of ``lag`` ms means the loop was stuck for the ``lag`` ms before it
(the same measurement as asyncio debug mode's slow-callback warning, without debug mode's
overhead). Stuck intervals go into a bounded ring. Its :meth:`LoopLagProbe.listener`, a runtime
listener, adds up the stuck time overlapping each finished trace's window into
``trace.attrs["loop_lag_ms"]``, which the ``blocking-call`` detector reads.

Opt-in with the ``loop_lag_probe`` setting (``lagless doctor`` turns it on): a tick every 5 ms
costs a few microseconds of loop time each. An ASGI integration calls :func:`ensure_probe` at
the start of each request; the first call on a loop starts that loop's probe. Lag at the very
end of a request can be missed if the tick noticing it fires after the trace finished.
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

from lagless._guard import report_internal_error
from lagless._trace import Trace


class LoopLagProbe:
    """Measures event-loop lag on the loop it is started on. ``clock`` is injectable so tests
    feed ticks by hand (:meth:`note_tick`) instead of sleeping."""

    def __init__(
        self,
        *,
        interval_ms: float = 5.0,
        min_lag_ms: float = 1.0,
        capacity: int = 4096,
        clock: Callable[[], int] = perf_counter_ns,
    ) -> None:
        if interval_ms <= 0 or capacity <= 0:
            raise ValueError("interval_ms and capacity must be positive")
        self.interval_ns = int(interval_ms * 1_000_000)
        self.min_lag_ns = int(min_lag_ms * 1_000_000)
        self._clock = clock
        # (start_ns, end_ns) of each stuck interval. deque.append is atomic under the GIL.
        self._stalls: collections.deque[tuple[int, int]] = collections.deque(maxlen=capacity)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The runtime listener: one bound method object, so remove_listener finds it.
        self.listener: Callable[[Trace], None] = self._listen

    # -- measuring -----------------------------------------------------------------------------

    def note_tick(self, expected_ns: int, actual_ns: int) -> None:
        """A tick due at ``expected_ns`` ran at ``actual_ns``: the loop was stuck in between."""
        if actual_ns - expected_ns >= self.min_lag_ns:
            self._stalls.append((expected_ns, actual_ns))

    async def run(self) -> None:
        """Tick forever (until cancelled)."""
        interval_s = self.interval_ns / 1e9
        clock = self._clock
        while True:
            expected = clock() + self.interval_ns
            await asyncio.sleep(interval_s)
            self.note_tick(expected, clock())

    def start(self) -> None:
        """Start ticking on the running loop (call from inside it)."""
        if self.running:
            return
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self.run(), name="lagless-loop-lag-probe")

    def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- reading -------------------------------------------------------------------------------

    def lag_between(self, start_ns: int, end_ns: int) -> float:
        """Milliseconds the loop was stuck within ``[start_ns, end_ns]``."""
        total = 0
        # Stalls are appended in time order: walk back from the newest and stop at the first
        # one that ended before the window, so a listener call costs what the request overlaps,
        # not the whole ring.
        for stall_start, stall_end in reversed(tuple(self._stalls)):
            if stall_end <= start_ns:
                break
            overlap = min(end_ns, stall_end) - max(start_ns, stall_start)
            if overlap > 0:
                total += overlap
        return total / 1_000_000

    def _listen(self, trace: Trace) -> None:
        """Runtime listener: attach the lag during ``trace`` to ``trace.attrs["loop_lag_ms"]``.

        Only for traces finished on this probe's loop; a WSGI or other loop's request is not
        this loop's business."""
        if self._loop is not None and asyncio._get_running_loop() is not self._loop:
            return
        end = trace.start_ns + trace.duration_ns
        trace.attrs["loop_lag_ms"] = round(self.lag_between(trace.start_ns, end), 3)


_probes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopLagProbe] = (
    weakref.WeakKeyDictionary()
)


def ensure_probe(runtime: Any = None) -> LoopLagProbe | None:
    """Start the running loop's probe if the ``loop_lag_probe`` setting is on (idempotent and
    cheap: one setting read and one dict lookup). Returns the probe, or ``None`` when the
    setting is off or no loop is running."""
    try:
        if runtime is None:
            from lagless._runtime import get_runtime

            runtime = get_runtime()
        if not runtime.config.values.get("loop_lag_probe", False):
            return None
        loop = asyncio._get_running_loop()
        if loop is None:
            return None
        probe = _probes.get(loop)
        if probe is None or not probe.running:
            probe = LoopLagProbe()
            probe.start()
            _probes[loop] = probe
            runtime.add_listener(probe.listener)
        return probe
    except Exception as exc:
        report_internal_error("loop-lag-probe", exc)
        return None


def stop_probe(runtime: Any = None) -> None:
    """Stop the running loop's probe and stop listening (tests, shutdown)."""
    loop = asyncio._get_running_loop()
    probe = _probes.pop(loop, None) if loop is not None else None
    if probe is None:
        return
    probe.stop()
    if runtime is None:
        from lagless._runtime import get_runtime

        runtime = get_runtime()
    runtime.remove_listener(probe.listener)

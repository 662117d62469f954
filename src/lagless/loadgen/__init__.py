"""``lagless bench``: load tests that measure latency correctly, compare runs, and gate CI.

The command line (``lagless bench``) is the usual way in; :func:`bench` is the same run from
Python::

    from lagless.loadgen import bench, check_budgets, load_budgets
    result = bench("http://127.0.0.1:8000", rate=200, duration=30, warmup=5)
    result.write_json("bench.json")
    assert result.valid and not check_budgets(result, load_budgets("budgets.toml")).broken

By default the load is *open loop*: requests start on an arrival schedule whether or not
earlier ones finished, and each latency runs from the request's scheduled start, so a server
stall shows in the percentiles instead of pausing the generator (no coordinated omission).
The modules here are private: the schedule (``_schedule``), the HTTP client (``_http``),
in-process targets (``_inproc``), the loops (``_engine``), a run end to end (``_run``), results
(``_results``), comparison (``_compare``), budgets (``_budget``), reports (``_report``,
``_html``) and the Locust adapter (``_locust``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from lagless.loadgen._budget import BudgetReport, check_budgets, load_budgets
from lagless.loadgen._compare import Comparison, ab_test, compare
from lagless.loadgen._engine import ProgressHook, Snapshot, judge_generator
from lagless.loadgen._results import BenchResult, RouteStats, load_result, merge_results
from lagless.loadgen._run import BenchOptions, run_async

__all__ = [
    "BenchOptions",
    "BenchResult",
    "BudgetReport",
    "Comparison",
    "RouteStats",
    "Snapshot",
    "ab_test",
    "bench",
    "check_budgets",
    "compare",
    "judge_generator",
    "load_budgets",
    "load_result",
    "merge_results",
    "run_async",
]


def bench(
    target: Any,
    *,
    progress: ProgressHook | None = None,
    options: BenchOptions | None = None,
    **option_values: Any,
) -> BenchResult:
    """Load ``target`` (a base URL, ``"module:app"`` or an ASGI/WSGI app) and return the
    result. Keyword options are :class:`BenchOptions` fields (``rate``, ``duration``,
    ``users``, ``stages``, ``warmup``, ``scenario``...)."""
    opts = options or BenchOptions(**option_values)
    return asyncio.run(run_async(target, opts, progress))

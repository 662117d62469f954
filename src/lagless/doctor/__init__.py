"""``lagless doctor``: exercise every route of an app, then say what is slow and how to fix it.

The command line (``lagless doctor``) is the usual way in; :func:`diagnose` is the same run
from Python (a notebook, a custom CI step)::

    from lagless.doctor import diagnose
    report = diagnose("myapp.main:app", runs=5)
    report.write_html("doctor.html")
    assert not [f for f in report.findings if f.severity in ("critical", "high")]

The modules here are private; their pieces are route discovery (``_discovery``), targets
(``_targets``), sending requests (``_client``), the run itself (``_runner``), figures
(``_stats``) and the reports (``_report``, ``_html``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from lagless.doctor._report import DoctorReport
from lagless.doctor._runner import ProgressHook, RunOptions
from lagless.doctor._runner import run as _run
from lagless.doctor._targets import (
    Target,
    TargetError,
    app_target,
    django_target,
    example_target,
    module_target,
    url_target,
)

if TYPE_CHECKING:
    from lagless._scenario import Scenario

__all__ = ["DoctorReport", "Target", "TargetError", "diagnose", "resolve_target"]


def resolve_target(
    target: Any = None,
    *,
    django: str | None = None,
    example: str = "naive",
    db_url: str | None = None,
) -> Target:
    """``target`` is ``None`` (the bundled example in mode ``example``), ``"module:app"``, a
    base URL, or an application object; ``django`` a settings module."""
    if django is not None:
        return django_target(django)
    if target is None:
        return example_target(example, db_url)
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        if target.startswith(("http://", "https://")):
            return url_target(target)
        return module_target(target)
    return app_target(target, type(target).__name__)


def _explainer(target: Target) -> Any:
    """An EXPLAIN runner on the target's (first) database, or ``None`` when there is none to
    reach: a URL target, or an app whose engines the doctor cannot see. Missing-index findings
    need it; every other detector works without."""
    if not target.in_process or not target.database_urls:
        return None
    from lagless._explain import Explainer
    from lagless.errors import ConfigError

    for url in target.database_urls:
        try:
            return Explainer.from_url(url)
        except ConfigError:
            continue  # an in-memory or unsupported database: try the next one
    return None


def diagnose(
    target: Any = None,
    *,
    runs: int = 5,
    warmup: int = 1,
    concurrency: int = 1,
    scenario: Scenario | None = None,
    progress: ProgressHook | None = None,
    settings: Any = None,
    **target_options: Any,
) -> DoctorReport:
    """Run the doctor on ``target`` (see :func:`resolve_target`) and return its report."""
    from lagless.detectors import analyze

    resolved = resolve_target(target, **target_options)
    options = RunOptions(runs=runs, warmup=warmup, concurrency=concurrency, scenario=scenario)
    result = asyncio.run(_run(resolved, options, progress))
    explainer = _explainer(resolved)
    try:
        findings = analyze(result.traces, mode="doctor", settings=settings, explainer=explainer)
    finally:
        close = getattr(explainer, "close", None)
        if close is not None:
            close()
    return DoctorReport.build(result, findings)

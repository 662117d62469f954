"""``lagless doctor``: diagnose an app's latency problems in one command."""

from __future__ import annotations

import argparse
from typing import Any

from lagless.detectors._base import SEVERITIES
from lagless.errors import LaglessError

# Worst first, as the choices read in --help.
_SEVERITIES = tuple(reversed(SEVERITIES))


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "doctor",
        help="exercise every route of an app and report what makes it slow, with fixes",
        description=(
            "Discover an app's routes (OpenAPI schema, else its router), call each one "
            "(a warm-up, then --runs measured rounds), trace every request and report the "
            "latency problems found, worst first, each with its evidence and a concrete fix. "
            "With no TARGET it examines lagless's bundled example shop. Only GET routes are "
            "called unless a --scenario names others."
        ),
        epilog=(
            "examples:\n"
            "  lagless doctor                              # the bundled naive example\n"
            "  lagless doctor --example tuned              # ... and the fixed one\n"
            "  lagless doctor myproject.main:app --html report.html --fail-on high\n"
            "  lagless doctor 'myproject.app:create_app()' --scenario doctor.toml\n"
            "  lagless doctor --django mysite.settings\n"
            "  lagless doctor http://127.0.0.1:8000        # a running server (limited)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target",
        nargs="?",
        help="'module:app' (ASGI or WSGI; 'module:factory()' calls a factory) or a base URL "
        "of a running server with lagless installed; omitted: the bundled example",
    )
    p.add_argument("--django", metavar="SETTINGS", help="a Django project's settings module")
    p.add_argument(
        "--example",
        choices=("naive", "tuned"),
        default="naive",
        help="which bundled example to run when no TARGET is given (default: naive)",
    )
    p.add_argument("--db", metavar="URL", help="database URL for the bundled example")
    p.add_argument("--scenario", metavar="FILE", help="TOML or YAML scenario (requests, params)")
    p.add_argument("--runs", type=int, default=5, help="measured requests per route (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (default 1)")
    p.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight at once (default 1)"
    )
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    p.add_argument("--json", metavar="PATH", help="write the findings and figures as JSON")
    p.add_argument(
        "--fail-on",
        choices=_SEVERITIES,
        metavar="SEVERITY",
        help="exit 1 if any finding is this severe or worse (critical, high, medium, low, info)",
    )
    p.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="CODE",
        help="switch a detector off by its code (repeatable), e.g. --disable sequential-io",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lagless._scenario import load_scenario
    from lagless.detectors import DetectorSettings, severity_at_least
    from lagless.doctor import diagnose

    if args.target and args.django:
        raise LaglessError("give either TARGET or --django, not both")
    if args.runs < 1 or args.warmup < 0 or args.concurrency < 1:
        raise LaglessError("--runs and --concurrency must be >= 1 and --warmup >= 0")
    console = Console()
    scenario = load_scenario(args.scenario) if args.scenario else None
    settings = DetectorSettings(disabled=frozenset(args.disable)) if args.disable else None
    target_options: dict[str, Any] = {}
    if args.django:
        target_options["django"] = args.django
    elif not args.target:
        target_options["example"] = args.example
        target_options["db_url"] = args.db
        console.print(
            f"[dim]No TARGET: examining the bundled example shop in [bold]{args.example}[/] "
            "mode (see `lagless doctor --help`).[/]"
        )
    report = _with_progress(
        console,
        not args.quiet and console.is_terminal,
        lambda hook: diagnose(
            args.target,
            runs=args.runs,
            warmup=args.warmup,
            concurrency=args.concurrency,
            scenario=scenario,
            progress=hook,
            settings=settings,
            **target_options,
        ),
    )
    report.print(console)
    if args.html:
        report.write_html(args.html)
        console.print(f"HTML report: {args.html}")
    if args.json:
        report.write_json(args.json)
        console.print(f"JSON report: {args.json}")
    if args.fail_on:
        bad = [f for f in report.findings if severity_at_least(f.severity, args.fail_on)]
        if bad:
            console.print(f"[bold red]{len(bad)} finding(s) at or above {args.fail_on}.[/]")
            return 1
    return 0


def _with_progress(console: Any, show: bool, work: Any) -> Any:
    if not show:
        return work(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]doctor[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=None)

        def hook(name: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, description=name)

        return work(hook)

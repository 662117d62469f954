"""``lagless bench``: a load test that measures latency correctly, compares, and gates CI."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from lagless.errors import LaglessError

#: Exit codes: 0 passed, 1 a budget broken or a regression found, 2 usage error (cli.py),
#: 3 the run is invalid (the generator itself was saturated, so nothing was judged).
EXIT_BROKEN = 1
EXIT_INVALID = 3


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="load-test an app at a fixed arrival rate; compare with a baseline; check budgets",
        description=(
            "Send requests to TARGET on an arrival schedule (open loop: each request starts on "
            "time whether or not earlier ones finished, and its latency counts from its "
            "scheduled start, so server stalls are not hidden), then print per-route "
            "percentiles. --users N alone runs a closed loop of N users instead. Without a "
            "--scenario it loads every GET route it can discover, as `lagless doctor` does. "
            "Exit codes: 0 ok, 1 budget broken or regression, 3 invalid run (the generator "
            "could not keep up)."
        ),
        epilog=(
            "examples:\n"
            "  lagless bench http://127.0.0.1:8000 --rate 200 --duration 30s --warmup 5s\n"
            "  lagless bench myapp.main:app --rate 100 --duration 10   # in process, no server\n"
            "  lagless bench URL --rate 200 -d 60 --json new.json --baseline old.json\n"
            "  lagless bench URL --rate 200 -d 60 --budget budgets.toml --html report.html\n"
            "  lagless bench URL_A --compare-target URL_B --rate 100 -d 60   # interleaved A/B\n"
            "  lagless bench URL --stages 10s:100,30s:400,10s:0 --scenario load.toml\n"
            "  lagless bench URL --users 16 --duration 20        # closed loop, for comparison\n"
            "  lagless bench URL --rate 5000 -d 60 --locust --locust-workers 4"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", help="a base URL (http://host:port) or 'module:app' (in process)")
    p.add_argument("--rate", "-r", type=float, help="arrival rate, requests/s (open loop)")
    p.add_argument(
        "--duration", "-d", default="10s", help="measured duration, e.g. 30s, 2m (default 10s)"
    )
    p.add_argument(
        "--users",
        "-u",
        type=int,
        help="closed loop of N users when --rate is not given; with --rate, at most N connections",
    )
    p.add_argument(
        "--stages",
        help="ramping arrival rates instead of --rate: DURATION:RATE,... "
        "e.g. 10s:100,30s:100,10s:0",
    )
    p.add_argument(
        "--warmup", "-w", default="1s", help="unmeasured load first (default 1s; 0 for none)"
    )
    p.add_argument("--scenario", metavar="FILE", help="TOML/YAML scenario (as lagless doctor)")
    p.add_argument("--json", metavar="OUT", help="write the result with full histograms as JSON")
    p.add_argument("--html", metavar="OUT", help="write a self-contained HTML report with plots")
    p.add_argument("--svg", metavar="OUT", help="write the percentile plot alone as SVG")
    p.add_argument("--baseline", metavar="FILE", help="compare with an earlier --json result")
    p.add_argument("--budget", metavar="FILE", help="budgets TOML; exit 1 when one is broken")
    p.add_argument(
        "--compare-target",
        metavar="TARGET_B",
        help="interleaved A/B: alternate rounds against TARGET (A) and TARGET_B (B) and test "
        "whether B differs significantly",
    )
    p.add_argument("--rounds", type=int, default=6, help="A/B rounds per target (default 6)")
    p.add_argument(
        "--regress-rel",
        type=float,
        default=10.0,
        metavar="PCT",
        help="a regression must exceed this relative change, percent (default 10)",
    )
    p.add_argument(
        "--regress-abs",
        type=float,
        default=1.0,
        metavar="MS",
        help="... and this absolute change, ms (default 1)",
    )
    p.add_argument("--max-connections", type=int, help="connection limit (default 1000)")
    p.add_argument(
        "--timeout", type=float, default=30.0, help="per-request timeout, s (default 30)"
    )
    p.add_argument(
        "--late-tolerance",
        type=float,
        default=10.0,
        metavar="MS",
        help="a dispatch later than this counts as late (default 10 ms); more than 1%% late "
        "sends invalidate the run",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the weighted route choice")
    p.add_argument("--label", help="a name for this run in reports")
    p.add_argument(
        "--locust",
        action="store_true",
        help="run the same scenario on Locust (master + workers) for more load than one "
        "process makes; results in the same format",
    )
    p.add_argument("--locust-workers", type=int, default=2, help="Locust worker processes")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lagless._scenario import load_scenario
    from lagless.loadgen import _report
    from lagless.loadgen._budget import check_budgets, load_budgets
    from lagless.loadgen._compare import Thresholds, ab_test, compare
    from lagless.loadgen._results import load_result
    from lagless.loadgen._run import BenchOptions, run_ab_async, run_async
    from lagless.loadgen._schedule import parse_duration

    console = Console()
    # Read every input first: a typo in a budgets file should fail before a 10-minute run.
    scenario = load_scenario(args.scenario) if args.scenario else None
    budgets = load_budgets(args.budget) if args.budget else None
    baseline = load_result(args.baseline) if args.baseline else None
    if baseline is not None and baseline.label in ("", baseline.target):
        # Both runs usually share a target URL: without this, reports would show two sections
        # and two plot lines named alike, and "URL against baseline URL".
        baseline.label = Path(args.baseline).name
    if args.rate is None and args.stages is None and args.users is None:
        raise LaglessError("give --rate R (open loop), --stages, or --users N (closed loop)")
    if args.compare_target and args.stages:
        raise LaglessError("--compare-target runs at one --rate; --stages is not supported")
    thresholds = Thresholds(rel=args.regress_rel / 100.0, abs_ms=args.regress_abs)
    options = BenchOptions(
        rate=args.rate,
        duration=parse_duration(args.duration),
        users=args.users,
        stages=args.stages,
        warmup=parse_duration(args.warmup),
        scenario=scenario,
        max_connections=args.max_connections,
        timeout=args.timeout,
        late_tolerance_ms=args.late_tolerance,
        seed=args.seed,
        label=args.label or "",
    )
    show = not args.quiet and console.is_terminal
    code = 0
    if args.compare_target:
        with _report.live_progress(console, show) as hook:
            runs_a, runs_b = asyncio.run(
                run_ab_async(
                    args.target, args.compare_target, options, rounds=args.rounds, progress=hook
                )
            )
        report = ab_test(runs_a, runs_b, thresholds)
        _report.print_ab(console, report)
        results = [report.a, report.b]
        comparison = report.comparison
        if args.json:
            Path(args.json).write_text(json.dumps(report.to_dict(), indent=1) + "\n")
        if comparison.verdict == "regressed":
            code = EXIT_BROKEN
    else:
        if args.locust:
            from lagless.loadgen._locust import run_locust

            result = run_locust(
                args.target,
                options,
                scenario_path=args.scenario,
                workers=args.locust_workers,
                console=console if show else None,
            )
        else:
            with _report.live_progress(console, show) as hook:
                result = asyncio.run(run_async(args.target, options, hook))
        _report.print_result(console, result)
        results = [result]
        comparison = None
        if baseline is not None:
            comparison = compare(baseline, result, thresholds)
            _report.print_comparison(console, comparison)
            results = [baseline, result]
            if comparison.verdict == "regressed":
                code = EXIT_BROKEN
        if args.json:
            result.write_json(args.json)
            console.print(f"[dim]JSON result: {args.json}[/]")
    budget_report = None
    if budgets is not None:
        budget_report = check_budgets(results[-1], budgets)
        _report.print_budgets(console, budget_report)
        if budget_report.broken:
            code = EXIT_BROKEN
    if args.html:
        from lagless.loadgen._html import write_html

        write_html(args.html, results, comparison=comparison, budgets=budget_report)
        console.print(f"[dim]HTML report: {args.html}[/]")
    if args.svg:
        from lagless.loadgen._html import write_svg

        write_svg(args.svg, results)
        console.print(f"[dim]SVG plot: {args.svg}[/]")
    if any(not r.valid for r in results[-2:] if r is not baseline):
        return EXIT_INVALID
    return code

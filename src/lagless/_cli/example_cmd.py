"""``lagless example serve``: the bundled example shop, served for a browser or a load test."""

from __future__ import annotations

import argparse
from typing import Any

from lagless.errors import LaglessError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "example",
        help="serve the bundled example shop (naive or tuned) for a browser or `lagless bench`",
        description=(
            "The bundled example: a small bookshop API (FastAPI + SQLAlchemy) seeded with "
            "61,500 rows, in two modes. 'naive' commits every latency anti-pattern lagless "
            "detects; 'tuned' fixes each one. Open the served address in a browser for the "
            "front-end page; every response carries a Server-Timing header."
        ),
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    serve = actions.add_parser(
        "serve",
        help="serve the example with uvicorn",
        description="Serve the example shop with uvicorn, instrumented by lagless.",
        epilog="example: lagless example serve --mode tuned --port 8000",
    )
    serve.add_argument("--mode", choices=("naive", "tuned"), default="naive")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--db",
        metavar="URL",
        help="a database URL (postgresql://user@host/db); default: an embedded SQLite file",
    )
    serve.add_argument(
        "--no-monitor",
        action="store_true",
        help="serve without /metrics, the dashboard and browser timing",
    )
    serve.set_defaults(func=run_serve)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def build_app(mode: str, db_url: str | None) -> Any:
    """The example app, instrumented, as ``lagless example serve`` serves it."""
    import lagless
    from lagless.example import create_app

    return lagless.instrument(create_app(mode, db_url=db_url))


def build_monitored_app(mode: str, db_url: str | None, *, token: str) -> Any:
    """The example with lagless's monitoring on (docs/monitoring.md): ``/metrics``, the
    dashboard at ``/_lagless/`` behind ``token``, browser timing with the snippet injected into
    the page, and on-demand profiling with the same token."""
    from lagless.monitor import MonitorMiddleware, start

    mon = start(
        metrics=True,
        dashboard=True,
        dashboard_token=token,
        browser_timing=True,
        profile_token=token,
    )
    return MonitorMiddleware(build_app(mode, db_url), monitor=mon, inject_snippet=True)


def run_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise LaglessError(
            "serving the example needs uvicorn: pip install 'lagless[example]'"
        ) from None
    base = f"http://{args.host}:{args.port}"
    if args.no_monitor:
        app = build_app(args.mode, args.db)
    else:
        import os
        import secrets

        token = os.environ.get("LAGLESS_DASHBOARD_TOKEN") or secrets.token_urlsafe(18)
        app = build_monitored_app(args.mode, args.db, token=token)
    print(f"lagless example ({args.mode}) on {base}/  (Ctrl-C stops it)")
    if not args.no_monitor:
        print(f"  dashboard: {base}/_lagless/?token={token}")
        print(f"  metrics:   {base}/metrics")
        print(f"  profile:   curl -H 'X-Lagless-Profile: {token}' {base}/api/books > profile.html")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0

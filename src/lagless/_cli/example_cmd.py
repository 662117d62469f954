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


def run_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise LaglessError(
            "serving the example needs uvicorn: pip install 'lagless[example]'"
        ) from None
    app = build_app(args.mode, args.db)
    print(f"lagless example ({args.mode}) on http://{args.host}:{args.port}/  (Ctrl-C stops it)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0

"""The ``lagless`` command line. Each command lives in its own module under ``lagless._cli``
and is listed in :data:`COMMANDS`; this module only assembles the parser and dispatches."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Command modules, each exposing ``register(subparsers) -> None`` that adds its sub-parser
#: and sets ``func=run`` where ``run(args) -> int`` returns the exit code.
COMMANDS: list[str] = [
    "lagless._cli.config_cmd",
    "lagless._cli.doctor_cmd",
    "lagless._cli.analyze_cmd",
    "lagless._cli.example_cmd",
    "lagless._cli.static_cmd",
    "lagless._cli.profile_cmd",
    "lagless._cli.bench_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lagless",
        description="Find and remove latency in Python web APIs.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _version() -> str:
    from lagless import __version__

    return f"lagless {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from lagless.errors import LaglessError

        if isinstance(exc, LaglessError):
            print(f"lagless: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

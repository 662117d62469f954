"""``lagless config``: every setting, its value in force here and where it came from."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lagless._config import SETTINGS, load_config
from lagless.errors import ConfigError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "config",
        help="show every lagless setting, its value here and its source",
        description=(
            "Show every lagless setting with the value in force in this directory and where "
            "it came from (default, [tool.lagless] in pyproject.toml, or a LAGLESS_* "
            "environment variable). Exits 2 with the reason if a value is invalid."
        ),
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    try:
        cfg = load_config()
    except ConfigError as exc:
        # Other commands' errors say "`lagless config` lists them": so it must, even here.
        print(f"lagless: error: {exc}", file=sys.stderr)
        print("known settings: " + ", ".join(SETTINGS), file=sys.stderr)
        return 2
    table = Table(title="lagless settings")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("source")
    table.add_column("what it does")
    for name, setting in SETTINGS.items():
        table.add_row(name, repr(cfg.values[name]), cfg.sources[name], setting.doc)
    Console().print(table)
    return 0

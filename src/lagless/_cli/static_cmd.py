"""``lagless static build SRC DEST [--cdn URL]``: fingerprint and precompress static assets."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "static",
        help="build fingerprinted, precompressed static assets",
        description="Tools for static assets served with lagless.payload.",
    )
    actions = p.add_subparsers(dest="static_command", metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="copy SRC to DEST with content-hashed names, .br/.zst/.gz siblings and a manifest",
        description=(
            "Copy every file of SRC into DEST twice: under its own name and under a "
            "content-hashed one (app.css -> app.3f2a9c1b7d4e.css) that can be cached for a "
            "year. Compressible files also get .br, .zst and .gz siblings at maximum levels. "
            "DEST/manifest.json maps original to hashed names; resolve URLs with "
            "lagless.payload.Manifest.load('DEST').url('app.css') and serve DEST with "
            "lagless.payload.StaticApp (ASGI), WSGIStaticApp or DjangoStaticMiddleware."
        ),
    )
    build.add_argument("src", metavar="SRC", help="folder of source assets")
    build.add_argument("dest", metavar="DEST", help="output folder (created; must not be in SRC)")
    build.add_argument(
        "--cdn",
        metavar="URL",
        default=None,
        help="base URL of a CDN serving DEST (e.g. https://cdn.example.com/static); "
        "recorded in the manifest so Manifest.url() returns CDN URLs",
    )
    build.set_defaults(func=run_build)
    p.set_defaults(func=lambda args: _help(p))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from lagless.payload._manifest import MANIFEST_NAME, build

    manifest = build(args.src, args.dest, cdn=args.cdn)
    dest = Path(args.dest)
    siblings = sum(1 for p in dest.rglob("*") if p.suffix in (".br", ".zst", ".gz"))
    console = Console()
    console.print(
        f"[green]built[/] {len(manifest.files)} file(s) into {dest} "
        f"with {siblings} precompressed sibling(s); manifest: {dest / MANIFEST_NAME}"
    )
    if args.cdn:
        console.print(f"asset URLs resolve against {args.cdn}")
    return 0

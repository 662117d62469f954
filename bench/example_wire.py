"""Bytes on the wire for the bundled example's book list, naive vs tuned.

    python bench/example_wire.py            # prints a Markdown table (README.md shows it)

Both modes of the example app (``lagless.example``, seeded SQLite) are served in process,
instrumented as ``lagless example serve`` serves them, and asked for the list endpoint with
each ``Accept`` (JSON, MessagePack) and each ``Accept-Encoding`` (identity, gzip, brotli, zstd).
The figures are the response body bytes as sent (read from the raw stream, before any
decoding), so they are what crosses the network apart from the header block. Every body is
decoded again and checked against the JSON answer, so a row is never the size of a wrong
answer. Sizes do not depend on the machine: one run is the measurement.

Rows: the naive list as it is (every book; the naive app neither negotiates nor compresses,
so it sends the same bytes whatever the client accepts); the tuned list's default page
(20 books), its largest page (100) and a sparse page (``?fields=id,title``, 100 books).
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from lagless.payload import ACCEPT_MSGPACK, decode

FORMATS = {"JSON": "application/json", "MessagePack": ACCEPT_MSGPACK}
CODINGS = ("identity", "gzip", "br", "zstd")


@dataclass
class Row:
    label: str
    items: int
    sizes: dict[tuple[str, str], int]  # (format, coding) -> body bytes sent
    sent: dict[tuple[str, str], tuple[str, str]]  # what the server chose (type, encoding)


async def measure(app: Any, label: str, url: str) -> Row:
    sizes: dict[tuple[str, str], int] = {}
    sent: dict[tuple[str, str], tuple[str, str]] = {}
    reference: Any = None
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            for fmt, accept in FORMATS.items():
                for coding in CODINGS:
                    headers = {"Accept": accept, "Accept-Encoding": coding}
                    request = client.build_request("GET", url, headers=headers)
                    response = await client.send(request, stream=True)
                    raw = b"".join([chunk async for chunk in response.aiter_raw()])
                    await response.aclose()
                    if response.status_code != 200:
                        raise SystemExit(f"{label}: {url} answered {response.status_code}")
                    media = response.headers.get("content-type", "")
                    encoding = response.headers.get("content-encoding", "identity")
                    value = decode(raw, media, None if encoding == "identity" else encoding)
                    if reference is None:
                        reference = value
                    elif value != reference:
                        raise SystemExit(f"{label}: {fmt}/{coding} decoded to a different answer")
                    sizes[(fmt, coding)] = len(raw)
                    sent[(fmt, coding)] = (media.split(";")[0], encoding)
    items = reference["items"] if isinstance(reference, dict) else reference
    return Row(label, len(items), sizes, sent)


def table(rows: list[Row]) -> str:
    """One line per (format, coding) asked for, one column per response."""
    head = "| body sent | " + " | ".join(f"{r.label} ({r.items:,} books)" for r in rows) + " |"
    lines = [head, "|---|" + "---:|" * len(rows)]
    for fmt in FORMATS:
        asked = "application/msgpack" if fmt == "MessagePack" else "application/json"
        for coding in CODINGS:
            cells = []
            for row in rows:
                media, encoding = row.sent[(fmt, coding)]
                # Marked: the server sent something other than what was asked for.
                off = media != asked or encoding != coding
                cells.append(f"{row.sizes[(fmt, coding)]:,}" + ("\\*" if off else ""))
            lines.append(f"| {fmt}, {coding} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def run() -> list[Row]:
    import lagless
    from lagless._cli.example_cmd import build_app

    lagless.configure(slow_request_ms=0)  # the naive list is slow on purpose; no log lines
    naive = build_app("naive", None)
    tuned = build_app("tuned", None)
    return [
        await measure(naive, "naive list", "/api/books"),
        await measure(tuned, "tuned page", "/api/books"),
        await measure(tuned, "tuned `?limit=100`", "/api/books?limit=100"),
        await measure(
            tuned, "tuned `?limit=100&fields=id,title`", "/api/books?limit=100&fields=id,title"
        ),
    ]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    rows = asyncio.run(run())
    print(table(rows))
    print()
    print("Body bytes as sent. \\* = the server sent JSON/identity instead (the naive app")
    print("neither negotiates nor compresses).")
    tuned = rows[1]
    base = rows[0].sizes[("JSON", "identity")]
    best = min(tuned.sizes.values())
    print(
        f"naive list {base:,} B; tuned default page {tuned.sizes[('JSON', 'identity')]:,} B JSON,"
        f" {best:,} B at best ({base / best:,.0f}x fewer bytes)."
    )


if __name__ == "__main__":
    main()

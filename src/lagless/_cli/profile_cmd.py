"""``lagless profile TARGET ROUTE``: a pyinstrument profile of one request, from the CLI."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

from lagless.errors import LaglessError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "profile",
        help="profile one request with pyinstrument (HTML or speedscope)",
        description=(
            "Send one request to TARGET and save a pyinstrument profile of exactly that "
            "request. TARGET is an app to import ('module:app', FastAPI/Starlette/Litestar/"
            "Flask or any ASGI/WSGI app; run in this process, with a one-off token) or the URL "
            "of a server running lagless's monitor with profile_token set (pass the token with "
            "--token or LAGLESS_PROFILE_TOKEN)."
        ),
        epilog=(
            "examples:\n"
            "  lagless profile myapp.main:app /api/books\n"
            "  lagless profile myapp.main:app /api/orders -X POST -d '{\"id\": 1}' "
            "-H 'content-type: application/json'\n"
            "  lagless profile http://127.0.0.1:8000 /api/books --token $TOKEN "
            "--format speedscope"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="TARGET", help="'module:app' or a server's base URL")
    p.add_argument("route", metavar="ROUTE", help="the path (and query) to request, e.g. /api/x")
    p.add_argument("-X", "--method", default="GET", help="HTTP method (default GET)")
    p.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header (repeatable)",
    )
    p.add_argument("-d", "--data", help="request body")
    p.add_argument(
        "--format",
        choices=("html", "speedscope"),
        default="html",
        help="pyinstrument's HTML page (default) or speedscope JSON (open at speedscope.app)",
    )
    p.add_argument("-o", "--output", help="where to write the profile (default lagless-profile.*)")
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="unprofiled requests sent first, so imports and caches are warm (default 1)",
    )
    p.add_argument("--token", help="the server's profile_token (URL targets)")
    p.set_defaults(func=run)


def _headers(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise LaglessError(f"a header is 'Name: value', got {item!r}")
        out[name.strip()] = value.strip()
    return out


def run(args: argparse.Namespace) -> int:
    try:
        import httpx
    except ImportError:
        raise LaglessError("lagless profile needs httpx: pip install 'lagless[http]'") from None
    if not args.route.startswith("/"):
        raise LaglessError(f"ROUTE must start with '/', got {args.route!r}")
    headers = _headers(args.header)
    output = Path(args.output or f"lagless-profile.{'html' if args.format == 'html' else 'json'}")
    request = {
        "method": args.method.upper(),
        "url": args.route,
        "headers": headers,
        "content": args.data.encode() if args.data is not None else None,
    }
    if args.target.startswith(("http://", "https://")):
        token = args.token or os.environ.get("LAGLESS_PROFILE_TOKEN")
        if not token:
            raise LaglessError(
                "profiling a server needs its profile_token: --token or LAGLESS_PROFILE_TOKEN"
            )
        flagged = _flag(request, token, args.format)
        try:
            with httpx.Client(base_url=args.target.rstrip("/"), timeout=120) as client:
                for _ in range(max(args.warmup, 0)):
                    client.request(**request)
                response = client.request(**flagged)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise LaglessError(f"{args.target}: {type(exc).__name__}: {exc}") from None
    else:
        try:
            response = asyncio.run(_in_process(args.target, request, args.format, args.warmup))
        except LaglessError:
            raise
        except Exception as exc:
            # The app raised out of the ASGI/WSGI call (or is not an app at all, as with
            # `json:dumps`): say so in one line rather than through the HTTP client's stack.
            raise LaglessError(
                f"{args.target}: calling the app failed: {type(exc).__name__}: {exc}"
            ) from None
    return _save(response, output, args.format)


def _flag(request: dict[str, Any], token: str, fmt: str) -> dict[str, Any]:
    headers = {
        **request["headers"],
        "X-Lagless-Profile": token,
        "X-Lagless-Profile-Format": fmt,
    }
    return {**request, "headers": headers}


async def _in_process(spec: str, request: dict[str, Any], fmt: str, warmup: int) -> Any:
    import httpx

    import lagless
    from lagless.doctor._client import _Lifespan
    from lagless.doctor._targets import _is_asgi, import_app
    from lagless.monitor import Monitor, MonitorMiddleware, MonitorWSGIMiddleware

    app = import_app(spec)
    token = secrets.token_urlsafe(24)
    rt = lagless.get_runtime()
    rt.configure(profile_token=token)
    asgi = _is_asgi(app)
    instrumented = lagless.instrument(app)
    mon = Monitor(runtime=rt, background=False).install()
    flagged = _flag(request, token, fmt)
    try:
        if asgi:
            lifespan = _Lifespan(MonitorMiddleware(instrumented, monitor=mon))
            await lifespan.startup()
            try:
                transport = httpx.ASGITransport(app=lifespan)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://localhost", timeout=120
                ) as client:
                    for _ in range(max(warmup, 0)):
                        await client.request(**request)
                    return await client.request(**flagged)
            finally:
                await lifespan.shutdown()
        # A Flask app object is itself a WSGI callable: wrapping it leaves it untouched.
        wsgi_app = MonitorWSGIMiddleware(instrumented, monitor=mon)
        with httpx.Client(
            transport=httpx.WSGITransport(app=wsgi_app), base_url="http://localhost"
        ) as client:
            for _ in range(max(warmup, 0)):
                client.request(**request)
            return client.request(**flagged)
    finally:
        mon.uninstall()


def _save(response: Any, output: Path, fmt: str) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    if response.status_code != 200 or "x-lagless-profiled-status" not in response.headers:
        raise LaglessError(
            f"no profile came back (HTTP {response.status_code}): "
            f"{response.text[:200].strip() or 'empty response'}"
        )
    output.write_bytes(response.content)
    status = response.headers["x-lagless-profiled-status"]
    console.print(f"[bold]profiled[/] the request (it answered {status}) -> [cyan]{output}[/]")
    if fmt == "speedscope":
        console.print("open it at https://www.speedscope.app (drag the file in)")
    else:
        console.print(f"open it in a browser: file://{output.resolve()}")
    return 0

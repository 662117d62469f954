"""The tuned shop's front end, built the way ``lagless static build`` builds a deploy.

The page's assets (``app.js``, ``style.css``) and lagless's browser MessagePack decoder
(``lagless-msgpack.js``) are fingerprinted and precompressed by :func:`lagless.payload.build_static`
into the cache directory, once per distinct content (the folder is named after a hash of the
sources, so an edited asset gets a new build and an old build is never served for it). The page
resolves every asset name through the resulting :class:`~lagless.payload.Manifest`, so a browser
may keep each asset for a year: a changed file has a new URL.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Final

from lagless.payload import Manifest, build_static, js_client_path

#: The page, served at ``/`` rather than under ``/static/`` (its own URL must stay stable).
PAGE: Final = "index.html"
#: Where the page asks for the MessagePack client; naive pages leave the marker as a comment.
CLIENT_MARKER: Final = "<!-- lagless-msgpack -->"
STATIC_URL: Final = "/static/"


def _sources(static_dir: Path) -> list[Path]:
    assets = [p for p in sorted(static_dir.iterdir()) if p.is_file() and p.name != PAGE]
    return [*assets, js_client_path()]


def build_assets(static_dir: Path, cache_dir: Path) -> Path:
    """The built asset folder (hashed copies, ``.br``/``.zst``/``.gz`` siblings,
    ``manifest.json``) for the sources in ``static_dir``, built on first use."""
    sources = _sources(static_dir)
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    dest = cache_dir / f"example-static-{digest.hexdigest()[:12]}"
    if (dest / "manifest.json").is_file():
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place, so a concurrent process or an
    # interrupted build never leaves a half-written folder under the final name.
    with tempfile.TemporaryDirectory(prefix="example-static-", dir=cache_dir) as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        for path in sources:
            shutil.copyfile(path, src / path.name)
        build_static(src, out)
        try:
            os.replace(out, dest)
        except OSError:
            if not (dest / "manifest.json").is_file():
                raise  # not a lost race with another process: a real failure
    return dest


def render_page(static_dir: Path, manifest: Manifest) -> bytes:
    """``index.html`` with each ``/static/<name>`` replaced by its hashed URL and the
    MessagePack client loaded before the page's script."""
    page = (static_dir / PAGE).read_text(encoding="utf-8")
    client = manifest.url(js_client_path().name)
    page = page.replace(CLIENT_MARKER, f'<script src="{client}" defer></script>')
    for name in manifest.files:
        page = page.replace(f'"{STATIC_URL}{name}"', f'"{manifest.url(name)}"')
    return page.encode()

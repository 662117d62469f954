"""``lagless static build``: fingerprint and precompress a folder of assets, write a manifest.

Each file ``css/app.css`` is copied to ``DEST/css/app.css`` (for names that must stay stable:
``favicon.ico``, ``robots.txt``) and to ``DEST/css/app.3f2a9c1b7d4e.css``, whose name carries
the first 12 hex digits of the SHA-256 of its content. A changed file gets a new name, so the
hashed one can be cached for a year (``immutable``) by browsers and CDNs with no risk of a stale
asset. Compressible files also get ``.br``, ``.zst`` and ``.gz`` siblings at the highest levels
(build time is paid once; every download after is smaller), kept only when smaller.

``DEST/manifest.json`` maps original names to hashed names; templates and front ends resolve
names through :class:`Manifest`, optionally against a CDN base URL::

    manifest = Manifest.load("static/manifest.json", base_url="/static/")
    manifest.url("css/app.css")   # '/static/css/app.3f2a9c1b7d4e.css'
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from lagless.errors import LaglessError
from lagless.payload._compression import compress, is_compressible
from lagless.payload._static import SIBLINGS, _content_type

MANIFEST_NAME: Final = "manifest.json"
MANIFEST_VERSION: Final = 1
HASH_LENGTH: Final = 12
#: Build-time levels: the maximum of each, since the cost is paid once per deploy.
BUILD_LEVELS: Final = {"br": 11, "zstd": 19, "gzip": 9}
#: Below this size a compressed sibling saves less than a packet.
MIN_PRECOMPRESS: Final = 256


class ManifestError(LaglessError):
    """The manifest is missing, malformed, or does not list a requested name."""


@dataclass(slots=True)
class Manifest:
    """Original name -> content-hashed name, and how to turn a name into a URL.

    ``url`` prefixes hashed names with ``cdn`` when set (``https://cdn.example.com/static``),
    else ``base_url``, so moving assets behind a CDN is a configuration change.
    """

    files: dict[str, str] = field(default_factory=dict)
    base_url: str = "/static/"
    cdn: str | None = None

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, base_url: str = "/static/", cdn: str | None = None
    ) -> Manifest:
        """Read a manifest written by :func:`build` (a file, or the folder holding it).
        ``cdn`` given here overrides the one recorded at build time."""
        p = Path(path)
        if p.is_dir():
            p = p / MANIFEST_NAME
        try:
            data = json.loads(p.read_text("utf-8"))
        except FileNotFoundError:
            raise ManifestError(f"no manifest at {str(p)!r}; run `lagless static build`") from None
        except (OSError, ValueError) as exc:
            raise ManifestError(f"cannot read manifest {str(p)!r}: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
            raise ManifestError(
                f"{str(p)!r} is not a lagless manifest (version {MANIFEST_VERSION})"
            )
        files = data.get("files")
        if not isinstance(files, dict):
            raise ManifestError(f"{str(p)!r} has no 'files' table")
        return cls(
            {str(k): str(v) for k, v in files.items()},
            base_url,
            cdn if cdn is not None else data.get("cdn"),
        )

    def hashed(self, name: str) -> str:
        """The content-hashed name of ``name`` (``css/app.css`` -> ``css/app.<hash>.css``)."""
        key = name.lstrip("/")
        try:
            return self.files[key]
        except KeyError:
            close = difflib.get_close_matches(key, list(self.files), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ManifestError(f"{name!r} is not in the static manifest{hint}") from None

    def url(self, name: str) -> str:
        """The URL to put in a page for asset ``name``."""
        base = self.cdn if self.cdn else self.base_url
        return base.rstrip("/") + "/" + self.hashed(name)

    def to_dict(self) -> dict[str, Any]:
        return {"version": MANIFEST_VERSION, "cdn": self.cdn, "files": dict(self.files)}


def hashed_name(rel: str, digest: str) -> str:
    """``css/app.css`` + digest -> ``css/app.<12 hex>.css`` (dotfiles and extensionless too)."""
    head, _, name = rel.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        new = f"{name}.{digest[:HASH_LENGTH]}"
    else:
        new = f"{stem}.{digest[:HASH_LENGTH]}.{ext}"
    return f"{head}/{new}" if head else new


def _precompress(name: str, data: bytes, codings: tuple[str, ...]) -> dict[str, bytes]:
    """Siblings worth writing: coding -> bytes, only when at least 5% smaller."""
    if len(data) < MIN_PRECOMPRESS or not is_compressible(_content_type(name)):
        return {}
    out = {}
    for coding in codings:
        packed = compress(data, coding, BUILD_LEVELS[coding])
        if len(packed) < len(data) * 0.95:
            out[coding] = packed
    return out


def build(
    src: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    cdn: str | None = None,
    codings: tuple[str, ...] = ("br", "zstd", "gzip"),
) -> Manifest:
    """Fingerprint and precompress every file under ``src`` into ``dest``; write and return
    the manifest. Hidden files, existing precompressed siblings and symlinks leading out of
    ``src`` are skipped. ``dest`` may be inside ``src``'s parent but not inside ``src``."""
    from lagless.payload._compression import available_codings

    root = Path(src).resolve()
    out = Path(dest).resolve()
    if not root.is_dir():
        raise ManifestError(f"source folder {str(src)!r} does not exist")
    if out == root or root in out.parents:
        raise ManifestError("DEST must not be SRC or inside it (the build would read its output)")
    usable = available_codings(codings)
    files: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or path.suffix in SIBLINGS:
                continue
            real = path.resolve()
            if root not in real.parents or not real.is_file():
                continue  # a symlink leading out of SRC, or not a regular file
            rel = path.relative_to(root).as_posix()
            data = real.read_bytes()
            hashed = hashed_name(rel, hashlib.sha256(data).hexdigest())
            packed = _precompress(name, data, usable)
            for target_rel in (rel, hashed):
                target = out / target_rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(real, target)
                for suffix, coding in SIBLINGS.items():
                    sibling = target.with_name(target.name + suffix)
                    if coding in packed:
                        sibling.write_bytes(packed[coding])
                    elif sibling.exists():
                        sibling.unlink()  # left by an earlier build of a changed file
            files[rel] = hashed
    manifest = Manifest(files, cdn=cdn)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n", "utf-8")
    os.replace(tmp, out / MANIFEST_NAME)  # atomic: a running server never reads half a file
    return manifest

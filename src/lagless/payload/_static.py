"""Static files, sans-IO: index a folder, then answer a request for one file with a plan.

:class:`StaticFiles` indexes the folder once at start-up (a dict from URL path to file
facts), so the per-request lookup is one dict access and a path outside the folder simply is
not in the dict: ``../``, ``%2e%2e``, absolute paths and symlinks leading out of the folder
cannot name anything. :meth:`StaticFiles.respond` turns a method and request headers into a
:class:`Plan` (status, headers, which bytes); the ASGI, WSGI and Django adapters only send it.

What the plan applies:

- ``Cache-Control: public, max-age=31536000, immutable`` on content-hashed names only (from
  ``lagless static build``'s manifest, or names shaped ``name.<12 hex>.ext``); others get a
  short ``max-age`` so a redeploy shows within a minute;
- precompressed siblings (``app.js.br``, ``.zst``, ``.gz``) chosen from ``Accept-Encoding``
  with ``Vary: Accept-Encoding`` and their own ETag (a different representation);
- conditional requests in the order of RFC 9110 §13.2.2 (``If-Match``,
  ``If-Unmodified-Since``, ``If-None-Match``, ``If-Modified-Since``);
- one byte range (RFC 9110 §14.1.2: ``bytes=0-99``, ``100-``, suffix ``-500``), ``If-Range``,
  416 for an unsatisfiable range. Several ranges are answered with the whole file (a server
  may ignore ``Range``, §14.2), which is cheaper for both sides than ``multipart/byteranges``.
  Ranges are always of the unencoded file, since range clients (media players, download
  resumers) count offsets in the file they know.

Small files are read once and kept in memory, within a total budget, so serving them costs no
system call and no thread hop; larger ones are read in chunks when sent.
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Final

from lagless.payload._negotiation import negotiate_encoding

IMMUTABLE: Final = "public, max-age=31536000, immutable"
#: ``name.<12 lower-case hex>.ext`` as ``lagless static build`` writes them.
HASHED_NAME: Final = re.compile(r"\.[0-9a-f]{12}(\.[^./]+)?$")
#: Sibling suffix -> content coding, in server preference on a q tie.
SIBLINGS: Final = {".zst": "zstd", ".br": "br", ".gz": "gzip"}
CHUNK: Final = 64 * 1024
_TEXT_TYPES: Final = frozenset(
    {
        "application/javascript",
        "application/json",
        "image/svg+xml",
        "application/xml",
        "text/javascript",
    }
)


@dataclass(slots=True)
class Variant:
    """One stored representation of a file: the file itself or a precompressed sibling."""

    path: str
    size: int
    etag: str
    coding: str | None = None
    data: bytes | None = None


@dataclass(slots=True)
class StaticFile:
    url: str
    content_type: str
    last_modified: str
    mtime: int
    immutable: bool
    identity: Variant
    encoded: dict[str, Variant] = field(default_factory=dict)


@dataclass(slots=True)
class Plan:
    """The response to send. Body: ``data`` (bytes in memory), else ``length`` bytes of the
    file at ``path`` from ``offset``; ``None`` path and data means no body (HEAD, 304, 416)."""

    status: int
    headers: list[tuple[str, str]]
    path: str | None = None
    offset: int = 0
    length: int = 0
    data: bytes | None = None


def _content_type(name: str) -> str:
    ctype, _ = mimetypes.guess_type(name)
    if ctype is None:
        return "application/octet-stream"
    if ctype.startswith("text/") or ctype in _TEXT_TYPES:
        return f"{ctype}; charset=utf-8"
    return ctype


def _http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


class StaticFiles:
    """Index of a folder of static files and the rules to serve them.

    ``directory`` is the folder; ``manifest`` (default: ``manifest.json`` in it, if present)
    says which names are content-hashed. ``max_age`` is the cache lifetime of names that are
    not; ``cache_budget`` bounds the bytes kept in memory (files up to ``max_cached_size``).
    Files and folders whose name starts with a dot (``.env``, ``.git/``, ``.htpasswd``) are
    not served unless ``allow_dotfiles=True``: they are where secrets end up by accident.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        manifest: str | os.PathLike[str] | None = None,
        max_age: int = 60,
        follow_symlinks: bool = False,
        allow_dotfiles: bool = False,
        max_cached_size: int = 256 * 1024,
        cache_budget: int = 64 * 1024 * 1024,
    ) -> None:
        root = Path(directory).resolve()
        if not root.is_dir():
            raise NotADirectoryError(f"static directory {str(directory)!r} does not exist")
        self.root = root
        self.max_age = max_age
        self.follow_symlinks = follow_symlinks
        self.allow_dotfiles = allow_dotfiles
        self.max_cached_size = max_cached_size
        self.cache_budget = cache_budget
        self._cached_bytes = 0
        self.hashed_names = self._hashed_names(manifest)
        self.files: dict[str, StaticFile] = {}
        self.refresh()

    def _hashed_names(self, manifest: str | os.PathLike[str] | None) -> frozenset[str] | None:
        from lagless.payload._manifest import MANIFEST_NAME, Manifest

        path = Path(manifest) if manifest is not None else self.root / MANIFEST_NAME
        if not path.is_file():
            return None
        return frozenset(Manifest.load(path).files.values())

    def refresh(self) -> None:
        """Re-index the folder (after a deploy wrote new files)."""
        files: dict[str, StaticFile] = {}
        self._cached_bytes = 0
        root = str(self.root)
        hidden = not self.allow_dotfiles
        for dirpath, dirnames, filenames in os.walk(root, followlinks=self.follow_symlinks):
            dirnames[:] = sorted(d for d in dirnames if not (hidden and d.startswith(".")))
            names = set(filenames)
            for name in sorted(filenames):
                if hidden and name.startswith("."):
                    continue
                full = os.path.join(dirpath, name)
                base, ext = os.path.splitext(name)
                if ext in SIBLINGS and base in names:
                    continue  # a precompressed sibling: served through its original
                entry = self._index_file(full, names)
                if entry is not None:
                    files[entry.url] = entry
        self.files = files

    def _inside(self, full: str) -> os.stat_result | None:
        """``stat`` of ``full`` if it is a regular file that resolves inside the root."""
        try:
            if not self.follow_symlinks:
                real = os.path.realpath(full)
                if os.path.commonpath([real, str(self.root)]) != str(self.root):
                    return None  # a symlink out of the folder
            st = os.stat(full)
        except (OSError, ValueError):
            return None
        return st if stat.S_ISREG(st.st_mode) else None

    def _variant(self, full: str, st: os.stat_result, etag: str, coding: str | None) -> Variant:
        v = Variant(full, st.st_size, etag, coding)
        if (
            st.st_size <= self.max_cached_size
            and self._cached_bytes + st.st_size <= self.cache_budget
        ):
            with open(full, "rb") as f:
                v.data = f.read()
            self._cached_bytes += len(v.data)
        return v

    def _index_file(self, full: str, siblings: set[str]) -> StaticFile | None:
        st = self._inside(full)
        if st is None:
            return None
        rel = os.path.relpath(full, self.root).replace(os.sep, "/")
        name = os.path.basename(full)
        hashed = HASHED_NAME.search(name)
        if self.hashed_names is not None:
            immutable = rel in self.hashed_names
        else:
            immutable = hashed is not None
        tag = (
            hashed.group(0)[1:13]
            if (immutable and hashed)
            else f"{st.st_size:x}-{st.st_mtime_ns:x}"
        )
        identity = self._variant(full, st, f'"{tag}"', None)
        entry = StaticFile(
            url="/" + rel,
            content_type=_content_type(name),
            last_modified=_http_date(st.st_mtime),
            mtime=int(st.st_mtime),
            immutable=immutable,
            identity=identity,
        )
        for suffix, coding in SIBLINGS.items():
            if name + suffix in siblings:
                sib = full + suffix
                sst = self._inside(sib)
                if sst is not None:
                    entry.encoded[coding] = self._variant(sib, sst, f'"{tag}-{coding}"', coding)
        return entry

    def lookup(self, url_path: str) -> StaticFile | None:
        """The file for a URL path relative to the mount (``/css/app.css``), or ``None``."""
        return self.files.get(url_path if url_path.startswith("/") else "/" + url_path)

    # -- answering ------------------------------------------------------------------------

    def respond(self, entry: StaticFile, method: str, headers: Mapping[str, str]) -> Plan:
        """The plan for ``method`` on ``entry`` given request ``headers`` (lower-case keys)."""
        if method not in ("GET", "HEAD"):
            return Plan(405, [("allow", "GET, HEAD"), ("content-length", "0")])
        rng = headers.get("range")
        variant = entry.identity
        if entry.encoded and rng is None:
            coding = negotiate_encoding(headers.get("accept-encoding"), tuple(entry.encoded))
            if coding in entry.encoded:
                variant = entry.encoded[coding]
        common = [
            ("cache-control", IMMUTABLE if entry.immutable else f"public, max-age={self.max_age}"),
            ("etag", variant.etag),
            ("last-modified", entry.last_modified),
        ]
        if entry.encoded:
            common.append(("vary", "Accept-Encoding"))
        status = _preconditions(entry, variant, method, headers)
        if status is not None:
            return Plan(status, common if status == 304 else [("content-length", "0")])
        out = [("content-type", entry.content_type), ("accept-ranges", "bytes"), *common]
        if variant.coding is not None:
            out.append(("content-encoding", variant.coding))
        size = variant.size
        offset, length, status = 0, size, 200
        if rng is not None and method == "GET" and _if_range_ok(entry, headers.get("if-range")):
            parsed = parse_range(rng, size)
            if parsed == "unsatisfiable":
                return Plan(
                    416, [("content-range", f"bytes */{size}"), ("content-length", "0"), *common]
                )
            if isinstance(parsed, tuple):
                offset, length = parsed
                status = 206
                out.append(("content-range", f"bytes {offset}-{offset + length - 1}/{size}"))
        out.append(("content-length", str(length)))
        if method == "HEAD":
            return Plan(status, out)
        data = variant.data
        if data is not None:
            return Plan(
                status, out, data=data if length == size else data[offset : offset + length]
            )
        return Plan(status, out, path=variant.path, offset=offset, length=length)


def _etag_matches(header: str, etag: str, *, weak: bool) -> bool:
    """``If-Match`` / ``If-None-Match`` comparison (RFC 9110 §8.8.3.2)."""
    if header.strip() == "*":
        return True
    mine = etag.removeprefix("W/")
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            if not weak:
                continue  # strong comparison: a weak tag never matches
            tag = tag[2:]
        if tag == mine:
            return True
    return False


def _parse_date(value: str) -> int | None:
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _preconditions(
    entry: StaticFile, variant: Variant, method: str, headers: Mapping[str, str]
) -> int | None:
    """412 or 304 per RFC 9110 §13.2.2's evaluation order, else ``None`` (go on)."""
    if_match = headers.get("if-match")
    if if_match is not None:
        if not _etag_matches(if_match, variant.etag, weak=False):
            return 412
    else:
        ius = headers.get("if-unmodified-since")
        if ius is not None:
            date = _parse_date(ius)
            if date is not None and entry.mtime > date:
                return 412
    inm = headers.get("if-none-match")
    if inm is not None:
        # §13.1.2: If-None-Match uses the weak comparison; with it, If-Modified-Since is ignored.
        if _etag_matches(inm, variant.etag, weak=True):
            return 304
        return None
    ims = headers.get("if-modified-since")
    if ims is not None:
        date = _parse_date(ims)
        if date is not None and entry.mtime <= date:
            return 304
    return None


def _if_range_ok(entry: StaticFile, if_range: str | None) -> bool:
    """§13.1.5: the range applies only if the validator still matches (strong comparison)."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith('"'):
        return value == entry.identity.etag
    if value.startswith("W/"):
        return False
    date = _parse_date(value)
    return date is not None and date == entry.mtime


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """One ``bytes`` range as ``(offset, length)``; ``"unsatisfiable"``; or ``None`` to ignore
    it (malformed, another unit, or several ranges: the whole file is sent instead)."""
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not (_digits(first) or first == "") or not (_digits(last) or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = _position(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        suffix = min(suffix, size)
        return size - suffix, suffix
    start = _position(first)
    if last and _position(last) < start:
        return None  # invalid range-spec: ignore the header (§14.1.1)
    if start >= size:
        return "unsatisfiable"
    end = _position(last) if last else size - 1
    end = min(end, size - 1)
    return start, end - start + 1


def _digits(text: str) -> bool:
    """1*DIGIT in the ABNF sense (RFC 5234 §B.1: ASCII ``0``-``9`` only; ``str.isdigit`` also
    takes ``²`` and other characters a latin-1 header can carry, which ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def _position(text: str) -> int:
    """A byte position, saturated: no file has 10**18 bytes, and ``int`` refuses strings of
    more than 4300 digits, which a hostile ``Range`` header can carry."""
    text = text.lstrip("0") or "0"
    return int(text) if len(text) <= 18 else 10**18

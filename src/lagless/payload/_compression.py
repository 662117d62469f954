"""Response compression, sans-IO: which responses to compress, with what, and the compressors.

:func:`decide` looks only at the request's ``Accept-Encoding``, the method, the status and the
response headers, and returns a :class:`Decision`; the ASGI, WSGI and Django middlewares apply
it. The rules, and why:

- HEAD, 1xx, 204, 304 and 206 responses are left untouched (no body to compress, or a byte
  range of the *unencoded* representation, RFC 9110 §14.1);
- a response that already has ``Content-Encoding`` or says ``Cache-Control: no-transform``
  (RFC 9111 §5.2.2.6) is left untouched;
- already-compressed media types (images other than SVG, audio, video, archives, woff fonts)
  are left untouched: compressing them again burns CPU for nothing;
- every other response gets ``Vary: Accept-Encoding`` merged in, *whether or not this client
  gets it compressed*, so a shared cache does not hand a gzip body to a client that cannot
  read it (RFC 9110 §12.5.5);
- bodies smaller than ``minimum_size`` are not worth a compressor (the header overhead and the
  CPU outweigh the bytes saved), unless the client refused ``identity``;
- when compressing, ``Content-Length`` is dropped (or recomputed), ``Accept-Ranges`` removed,
  and a strong ``ETag`` becomes weak (RFC 9110 §8.8.3: the encoded bytes differ, so a strong
  validator for the unencoded bytes would be wrong for them).

Default levels were chosen by measuring a ~50 KB dynamic JSON API response (bench/payload.py,
numbers in docs/payload.md) with a latency rule: a higher level is worth it only when the bytes
it saves take longer to send on a 20 Mbit/s link than the CPU it adds. That gives zstd 3, brotli
3 and gzip 6; gzip 9 (Starlette's default) spends ~0.9 ms more than gzip 6 to save ~300 bytes.

A whole gzip body goes through libdeflate when the optional ``deflate`` package is installed
(``lagless[compression]``): the same gzip format for half to two thirds of zlib's CPU at a given
level, at a similar ratio (levels 1-12; 10-12 are its slow, exhaustive ones). libdeflate has no
streaming API, so streamed bodies stay on zlib, which caps the level at 9.
"""

from __future__ import annotations

import functools
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from lagless.payload._negotiation import negotiate_encoding

#: Default levels per coding, chosen by measurement (see the module docstring).
DEFAULT_LEVELS: Final[Mapping[str, int]] = {"zstd": 3, "br": 3, "gzip": 6}
#: Server preference on a q-value tie: the best ratio per CPU first.
DEFAULT_CODINGS: Final[tuple[str, ...]] = ("zstd", "br", "gzip")
DEFAULT_MINIMUM_SIZE: Final = 500

_SKIP_PREFIXES: Final = ("image/", "audio/", "video/")
_SKIP_TYPES: Final = frozenset(
    {
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/zstd",
        "application/x-bzip2",
        "application/x-xz",
        "application/x-7z-compressed",
        "application/x-rar-compressed",
        "application/vnd.rar",
        "application/pdf",
        "application/octet-stream",
        "font/woff",
        "font/woff2",
        "application/font-woff",
    }
)
#: Compressible despite their prefix.
_KEEP_TYPES: Final = frozenset(
    {"image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon", "image/bmp"}
)


def is_compressible(content_type: str | None) -> bool:
    """Whether a body of this media type is worth compressing (unknown type: yes)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _KEEP_TYPES:
        return True
    return not (media in _SKIP_TYPES or media.startswith(_SKIP_PREFIXES))


def merge_vary(existing: str | None, name: str) -> str:
    """``existing`` Vary value with ``name`` added once (``*`` already covers everything)."""
    if not existing or not existing.strip():
        return name
    items = [v.strip() for v in existing.split(",") if v.strip()]
    if "*" in items or any(v.lower() == name.lower() for v in items):
        return ", ".join(items)
    return ", ".join([*items, name])


def weaken_etag(etag: str) -> str:
    """``"abc"`` -> ``W/"abc"``; already weak tags are kept."""
    etag = etag.strip()
    return etag if etag.startswith("W/") else f"W/{etag}"


@dataclass(slots=True)
class Decision:
    """What to do with one response. ``coding`` is ``None`` to send it as is; ``headers`` is
    the replacement header list (lower-case names) whenever anything changed, else ``None``."""

    coding: str | None = None
    headers: list[tuple[str, str]] | None = None
    reason: str = ""


def decide(
    *,
    method: str,
    status: int,
    headers: Iterable[tuple[str, str]],
    accept_encoding: str | None,
    body_length: int | None,
    codings: tuple[str, ...] = DEFAULT_CODINGS,
    minimum_size: int = DEFAULT_MINIMUM_SIZE,
) -> Decision:
    """Decide how to encode a response. ``headers`` are ``(name, value)`` pairs (any case);
    ``body_length`` is ``None`` for a streaming body of unknown length."""
    if method == "HEAD" or status < 200 or status in (204, 206, 304):
        return Decision(reason="no body to compress")
    pairs = [(k.lower(), v) for k, v in headers]
    # RFC 9110 §5.3: repeated field lines (two ``Vary`` or ``Cache-Control`` lines) mean their
    # values joined by commas; a plain dict would keep only the last line's.
    lookup: dict[str, str] = {}
    for k, v in pairs:
        lookup[k] = f"{lookup[k]}, {v}" if k in lookup else v
    if "content-encoding" in lookup:
        return Decision(reason="already encoded")
    if "content-range" in lookup:
        return Decision(reason="a byte range")
    if "no-transform" in lookup.get("cache-control", "").lower():
        return Decision(reason="no-transform")
    if not is_compressible(lookup.get("content-type")):
        return Decision(reason="media type already compressed")
    length = body_length
    if length is None and "content-length" in lookup:
        try:
            length = int(lookup["content-length"])
        except ValueError:
            length = None
    vary = merge_vary(lookup.get("vary"), "Accept-Encoding")
    chosen = negotiate_encoding(accept_encoding, codings)
    coding = None if chosen in (None, "identity") else chosen
    # Small body: not worth it, unless the client refused identity (RFC 9110 §12.5.3), in
    # which case an acceptable coding is the only way to give it what it asked for.
    if (
        coding is not None
        and length is not None
        and length < minimum_size
        and negotiate_encoding(accept_encoding, ()) is not None
    ):
        coding = None
    out = [(k, v) for k, v in pairs if k != "vary"]
    out.append(("vary", vary))
    if coding is None:
        reason = "identity refused, none acceptable" if chosen is None else "identity"
        return Decision(headers=out, reason=reason)
    final = []
    for k, v in out:
        if k in ("content-length", "accept-ranges"):
            continue
        final.append((k, weaken_etag(v) if k == "etag" else v))
    final.append(("content-encoding", coding))
    return Decision(coding=coding, headers=final, reason="compressed")


class Compressor(Protocol):
    """A streaming compressor: ``compress`` returns what is ready, ``flush`` pushes out
    everything given so far (so a streamed chunk reaches the client now), ``finish`` ends."""

    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...
    def finish(self) -> bytes: ...


#: zlib's highest level; the levels above it exist only in libdeflate.
_ZLIB_MAX_LEVEL: Final = 9


class _Gzip:
    __slots__ = ("_c",)

    def __init__(self, level: int) -> None:
        # wbits 31 = gzip container (16) + 32 KiB window (15).
        self._c = zlib.compressobj(min(level, _ZLIB_MAX_LEVEL), zlib.DEFLATED, 31)

    def compress(self, data: bytes) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._c.flush(zlib.Z_FINISH)


class _Brotli:
    __slots__ = ("_c",)

    def __init__(self, level: int) -> None:
        import brotli

        self._c = brotli.Compressor(quality=level)

    def compress(self, data: bytes) -> bytes:
        return bytes(self._c.process(data))

    def flush(self) -> bytes:
        return bytes(self._c.flush())

    def finish(self) -> bytes:
        return bytes(self._c.finish())


class _Zstd:
    __slots__ = ("_c", "_mod")

    def __init__(self, level: int) -> None:
        import zstandard

        self._mod = zstandard
        self._c = zstandard.ZstdCompressor(level=level).compressobj()

    def compress(self, data: bytes) -> bytes:
        return bytes(self._c.compress(data))

    def flush(self) -> bytes:
        return bytes(self._c.flush(self._mod.COMPRESSOBJ_FLUSH_BLOCK))

    def finish(self) -> bytes:
        return bytes(self._c.flush(self._mod.COMPRESSOBJ_FLUSH_FINISH))


def compressor(coding: str, level: int | None = None) -> Compressor:
    """A fresh streaming compressor for ``coding`` (``gzip``, ``br`` or ``zstd``)."""
    lvl = DEFAULT_LEVELS[coding] if level is None else level
    if coding == "gzip":
        return _Gzip(lvl)
    if coding == "br":
        return _Brotli(lvl)
    if coding == "zstd":
        return _Zstd(lvl)
    raise ValueError(f"unknown content coding {coding!r}; expected gzip, br or zstd")


def compress(data: bytes, coding: str, level: int | None = None) -> bytes:
    """A whole body in one call (cheaper than the streaming objects: one allocation, zstd
    records the content size in the frame header, and gzip can use libdeflate)."""
    lvl = DEFAULT_LEVELS[coding] if level is None else level
    if coding == "gzip":
        libdeflate = _libdeflate_gzip()
        if libdeflate is not None:
            return bytes(libdeflate(data, lvl))
        return zlib.compress(data, min(lvl, _ZLIB_MAX_LEVEL), wbits=31)
    if coding == "br":
        import brotli

        return bytes(brotli.compress(data, quality=lvl))
    if coding == "zstd":
        return bytes(_zstd_compressor(lvl).compress(data))
    raise ValueError(f"unknown content coding {coding!r}; expected gzip, br or zstd")


@functools.cache
def _libdeflate_gzip() -> Callable[[bytes, int], bytearray] | None:
    """libdeflate's one-shot gzip (the ``deflate`` package), or ``None`` when it is not
    installed; looked up once, so a missing package costs one failed import, not one a call."""
    try:
        from deflate import gzip_compress
    except ImportError:
        return None
    return gzip_compress


_local = threading.local()


def _zstd_compressor(level: int) -> Any:
    """A per-thread ``ZstdCompressor`` per level: creating one allocates its context (tens of
    µs, a third of the cost of compressing 50 KB), and one instance must not be shared by
    threads compressing at the same time."""
    cache: dict[int, Any] | None = getattr(_local, "zstd", None)
    if cache is None:
        cache = _local.zstd = {}
    comp = cache.get(level)
    if comp is None:
        import zstandard

        comp = cache[level] = zstandard.ZstdCompressor(level=level)
    return comp


def available_codings(wanted: Iterable[str] = DEFAULT_CODINGS) -> tuple[str, ...]:
    """``wanted`` minus codings whose library is not installed (gzip is always there)."""
    out = []
    for coding in wanted:
        if coding not in DEFAULT_LEVELS:
            raise ValueError(f"unknown content coding {coding!r}; expected gzip, br or zstd")
        module = {"br": "brotli", "zstd": "zstandard"}.get(coding)
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                continue
        out.append(coding)
    return tuple(out)


def decompress(data: bytes, coding: str) -> bytes:
    """Undo :func:`compress` (used by the client helper and the tests)."""
    if coding in ("identity", ""):
        return data
    if coding in ("gzip", "x-gzip"):
        return zlib.decompress(data, 47)
    if coding == "br":
        import brotli

        return bytes(brotli.decompress(data))
    if coding == "zstd":
        import zstandard

        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))
    raise ValueError(f"unknown content coding {coding!r}")

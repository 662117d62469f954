"""SQL text helpers: fingerprints that fold literals, and redaction of inline values.

Pure functions on strings, used off the hot path (by detectors, exporters and reports). A
fingerprint folds what varies between calls of "the same query" — string and number literals,
``IN (...)`` lists of any length, placeholders of any paramstyle, whitespace, identifier quoting
and keyword case — so ``SELECT * FROM "book" WHERE author_id = 7`` and
``select * from book where author_id=%s`` share one shape.
"""

from __future__ import annotations

import functools
import re

_STRING = re.compile(r"'(?:[^']|'')*'")
_DOLLAR_STRING = re.compile(r"\$\$.*?\$\$", re.S)
_NUMBER = re.compile(r"(?<![\w$.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")
_PLACEHOLDER = re.compile(r"%\(\w+\)s|%s|\$\d+|(?<!:):\w+|\?")
_IN_LIST = re.compile(r"\bIN\s*\(\s*\?(?:\s*,\s*\?)*\s*\)", re.I)
_VALUES_LIST = re.compile(
    r"\bVALUES\s*(\(\s*\?(?:\s*,\s*\?)*\s*\))(?:\s*,\s*\(\s*\?(?:\s*,\s*\?)*\s*\))*", re.I
)
_QUOTED_IDENT = re.compile(r'"([^"]+)"|`([^`]+)`|\[([^\]]+)\]')
_SPACE = re.compile(r"\s+")
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)


def redact(sql: str) -> str:
    """Replace inline string and number literals by ``?``; keep everything else as written."""
    sql = _DOLLAR_STRING.sub("?", sql)
    sql = _STRING.sub("?", sql)
    sql = _HEX.sub("?", sql)
    return _NUMBER.sub("?", sql)


# Statements longer than this are fingerprinted without the cache: a bulk INSERT with inline
# values can be megabytes, and 4096 of them would pin gigabytes. Apps' shapes are short.
_CACHED_MAX_LEN = 2048


def fingerprint(sql: str) -> str:
    """The normalised shape of a statement (see module docstring). Cached: apps run few shapes."""
    if len(sql) > _CACHED_MAX_LEN:
        return _fingerprint(sql)
    return _cached_fingerprint(sql)


def _fingerprint(sql: str) -> str:
    text = _COMMENT.sub(" ", sql)
    text = redact(text)
    text = _PLACEHOLDER.sub("?", text)
    text = _QUOTED_IDENT.sub(lambda m: m.group(1) or m.group(2) or m.group(3), text)
    text = _SPACE.sub(" ", text).strip().rstrip(";").strip()
    text = _IN_LIST.sub("IN (...)", text)
    text = _VALUES_LIST.sub(r"VALUES \1", text)
    text = re.sub(r"\s*([(),=<>])\s*", r"\1", text)
    return text.lower()


def statement_verb(sql: str) -> str:
    """The statement's first keyword, upper-cased (``SELECT``, ``INSERT``, ``WITH``...)."""
    stripped = _COMMENT.sub(" ", sql).lstrip(" \t\r\n(")
    end = 0
    while end < len(stripped) and (stripped[end].isalpha() or stripped[end] == "_"):
        end += 1
    return stripped[:end].upper()


def is_select(sql: str) -> bool:
    """A read-only query (``SELECT``, or ``WITH`` ... ``SELECT`` without a data-modifying CTE)."""
    verb = statement_verb(sql)
    if verb == "SELECT":
        return True
    if verb == "WITH":
        upper = sql.upper()
        return not any(
            re.search(rf"\b{word}\b", upper) for word in ("INSERT", "UPDATE", "DELETE", "MERGE")
        )
    return False


_cached_fingerprint = functools.lru_cache(maxsize=4096)(_fingerprint)

"""RFC 9110 §13 conformance of the sans-IO rules, case by case; including every case of
Django's conditional-processing tests (the framework adapters are tested end to end in the
framework test files)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lagless.cache._conditional import (
    ensure_date,
    evaluate,
    http_date,
    not_modified_headers,
    parse_etags,
    parse_http_date,
    quote_etag,
    strong_etag,
    strong_match,
    to_timestamp,
    weak_match,
)

LAST_MODIFIED = parse_http_date("Sun, 21 Oct 2007 23:21:47 GMT")
LM = "Sun, 21 Oct 2007 23:21:47 GMT"
NEWER = "Mon, 18 Oct 2010 16:56:23 GMT"
INVALID = "Mon, 32 Oct 2010 16:56:23 GMT"
OLDER = "Sat, 20 Oct 2007 23:21:47 GMT"
ETAG = '"b4246ffc4f62314ca13147c9d4f76974"'
WEAK_ETAG = 'W/"b4246ffc4f62314ca13147c9d4f76974"'
OTHER = '"7fae4cd4b0f81e7d2914700043aa8ed6"'


def ev(
    method: str = "GET",
    etag: str | None = ETAG,
    last_modified: float | None = LAST_MODIFIED,
    exists: bool = True,
    **headers: str,
) -> int | None:
    return evaluate(
        method,
        {k.replace("_", "-"): v for k, v in headers.items()},
        etag=etag,
        last_modified=last_modified,
        exists=exists,
    )


def test_strong_etag_is_quoted_and_stable_across_processes() -> None:
    tag = strong_etag(b"hello world")
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 34
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lagless.cache import strong_etag; print(strong_etag(b'hello world'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert other == tag
    assert strong_etag(b"hello world!") != tag


def test_quote_etag() -> None:
    assert quote_etag("17") == '"17"'
    assert quote_etag('"17"') == '"17"'
    assert quote_etag('W/"17"') == 'W/"17"'
    with pytest.raises(ValueError, match="ETag"):
        quote_etag("has space")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"a"', ['"a"']),
        ('"a", "b"', ['"a"', '"b"']),
        ('  W/"a" ,"b"  ', ['W/"a"', '"b"']),
        ('"a,b", "c"', ['"a,b"', '"c"']),  # a comma is a legal etagc
        ("*", "*"),
        (" * ", "*"),
        ('"""', []),  # malformed: matches nothing
        ("a", []),  # unquoted
        ('"a" "b"', []),
        ("", []),
    ],
)
def test_parse_etags(value: str, expected: object) -> None:
    assert parse_etags(value) == expected


@pytest.mark.parametrize(
    ("a", "b", "strong", "weak"),
    [  # RFC 9110 §8.8.3.2 table
        ('W/"1"', 'W/"1"', False, True),
        ('W/"1"', 'W/"2"', False, False),
        ('W/"1"', '"1"', False, True),
        ('"1"', '"1"', True, True),
    ],
)
def test_comparison_table(a: str, b: str, strong: bool, weak: bool) -> None:
    assert strong_match(a, b) is strong
    assert weak_match(a, b) is weak


def test_http_dates() -> None:
    imf = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT")
    assert imf == 784111777
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == imf  # RFC 850
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == imf  # asctime
    assert parse_http_date(INVALID) is None
    assert parse_http_date("yesterday") is None
    assert parse_http_date(f"{LM}, {NEWER}") is None  # a list of dates is invalid
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert to_timestamp(784111777.9) == 784111777.0  # one-second resolution


# --- Django's conditional_processing cases -------------------------------------------------------
def test_without_conditions() -> None:
    assert ev() is None


def test_if_modified_since() -> None:
    assert ev(if_modified_since=LM) == 304
    assert ev("PUT", if_modified_since=LM) is None  # GET/HEAD only (§13.1.3)
    assert ev(if_modified_since=NEWER) == 304
    assert ev("PUT", if_modified_since=NEWER) is None
    assert ev(if_modified_since=INVALID) is None
    assert ev(if_modified_since=OLDER) is None


def test_if_unmodified_since() -> None:
    assert ev(if_unmodified_since=LM) is None
    assert ev(if_unmodified_since=NEWER) is None
    assert ev(if_unmodified_since=INVALID) is None
    assert ev(if_unmodified_since=OLDER) == 412
    assert ev("PUT", if_unmodified_since=OLDER) == 412


def test_if_none_match() -> None:
    assert ev(if_none_match=ETAG) == 304
    assert ev("PUT", if_none_match=ETAG) == 412  # unsafe methods: 412 (§13.1.2)
    assert ev(if_none_match=OTHER) is None
    assert ev(if_none_match=f"{ETAG}, {OTHER}") == 304
    assert ev(if_none_match=f"{OTHER},{ETAG}") == 304


def test_weak_if_none_match() -> None:
    assert ev(etag=WEAK_ETAG, if_none_match=ETAG) == 304
    assert ev("PUT", etag=WEAK_ETAG, if_none_match=ETAG) == 412
    assert ev(etag=WEAK_ETAG, if_none_match=WEAK_ETAG) == 304
    assert ev("PUT", etag=WEAK_ETAG, if_none_match=WEAK_ETAG) == 412
    assert ev(if_none_match=WEAK_ETAG) == 304
    assert ev("PUT", if_none_match=WEAK_ETAG) == 412


def test_all_if_none_match() -> None:
    assert ev(if_none_match="*") == 304
    assert ev("PUT", if_none_match="*") == 412
    # "*" matches any current representation, with or without an ETag (§13.1.2). Django answers
    # 200 for a representation without an ETag; RFC 9110 asks for 304.
    assert ev(etag=None, if_none_match="*") == 304
    assert ev("PUT", exists=False, etag=None, if_none_match="*") is None  # create-only PUT


def test_if_match() -> None:
    assert ev("PUT", if_match=ETAG) is None
    assert ev("PUT", if_match=OTHER) == 412
    assert ev("PUT", if_match=f"{OTHER}, {ETAG}") is None
    assert ev("DELETE", if_match=OTHER) == 412
    assert ev("PATCH", etag=None, if_match=ETAG) == 412  # nothing to compare with: false


def test_weak_if_match() -> None:
    # If-Match uses strong comparison: anything weak fails (§13.1.1).
    assert ev(etag=WEAK_ETAG, if_match=ETAG) == 412
    assert ev(etag=WEAK_ETAG, if_match=WEAK_ETAG) == 412
    assert ev(if_match=WEAK_ETAG) == 412


def test_all_if_match() -> None:
    assert ev(if_match="*") is None
    assert ev("PUT", exists=False, etag=None, if_match="*") == 412  # no current representation
    # RFC 9110: "*" is true when a representation exists, ETag or not (Django answers 412).
    assert ev(etag=None, if_match="*") is None


def test_both_headers() -> None:
    # If-None-Match takes precedence over If-Modified-Since (§13.2.2 step 3 before step 4).
    assert ev(if_modified_since=LM, if_none_match=ETAG) == 304
    assert ev(if_modified_since=OLDER, if_none_match=ETAG) == 304
    assert ev(if_modified_since=LM, if_none_match=OTHER) is None
    assert ev(if_modified_since=OLDER, if_none_match=OTHER) is None


def test_both_headers_2() -> None:
    # If-Unmodified-Since is ignored when If-Match is present (§13.1.4).
    assert ev(if_unmodified_since=LM, if_match=ETAG) is None
    assert ev(if_unmodified_since=OLDER, if_match=ETAG) is None
    assert ev(if_unmodified_since=OLDER, if_match=OTHER) == 412
    assert ev(if_unmodified_since=LM, if_match=OTHER) == 412


def test_single_conditions() -> None:
    assert ev(etag=None, if_modified_since=LM) == 304
    assert ev(last_modified=None, if_modified_since=LM) is None
    assert ev(last_modified=None, if_none_match=ETAG) == 304
    assert ev(etag=None, if_none_match=ETAG) is None
    assert ev(etag=None, if_modified_since=OLDER) is None
    assert ev(last_modified=None, if_none_match=OTHER) is None
    assert ev(etag=None, if_unmodified_since=OLDER) == 412
    assert ev(etag=None, if_unmodified_since=LM) is None
    # No modification date: If-Unmodified-Since is ignored (§13.1.4; Django answers 412).
    assert ev(last_modified=None, if_unmodified_since=OLDER) is None


def test_head_and_ignored_methods() -> None:
    assert ev("HEAD", if_modified_since=LM) == 304
    assert ev("HEAD", if_none_match=ETAG) == 304
    for method in ("OPTIONS", "TRACE", "CONNECT"):
        assert ev(method, if_match=OTHER, if_none_match=ETAG) is None  # §13.2.1


def test_invalid_etag_is_ignored() -> None:
    assert ev(if_none_match='"""') is None
    assert ev("PUT", if_match='"""') == 412  # a malformed If-Match can never be satisfied


def test_if_range_alone_changes_nothing() -> None:
    assert ev(if_range=OTHER) is None  # no Range support: If-Range ignored (§13.1.5)


def test_304_headers() -> None:
    kept = not_modified_headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", "123"),
            ("ETag", ETAG),
            ("Cache-Control", "max-age=60"),
            ("Vary", "Accept"),
            ("Expires", "Thu, 01 Dec 2033 16:00:00 GMT"),
            ("Content-Location", "/a.json"),
            ("Last-Modified", LM),
            ("X-Other", "1"),
            ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]
    )
    names = [n.lower() for n, _ in kept]
    assert names == [
        "etag",
        "cache-control",
        "vary",
        "expires",
        "content-location",
        "last-modified",
        "date",
    ]
    assert ensure_date([("etag", ETAG)], 784111777) == [
        ("etag", ETAG),
        ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ]
    assert ensure_date(kept, 0) == kept  # never a second Date

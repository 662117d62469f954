from __future__ import annotations

import pytest

from lagless.payload import negotiate_encoding, negotiate_media_type
from lagless.payload._negotiation import parse_accept_encoding, parse_qvalue

J, M = "application/json", "application/msgpack"
CODINGS = ("zstd", "br", "gzip")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, J),  # absent header: anything goes, the default wins
        ("", J),
        ("*/*", J),  # a tie goes to the server's first choice
        ("application/*", J),
        ("application/msgpack", M),
        ("application/x-msgpack", M),  # the unregistered alias counts
        ("application/json, application/msgpack", J),
        ("application/json;q=0.5, application/msgpack", M),
        ("application/msgpack;q=0.9, */*;q=0.1", M),
        ("*/*, application/json;q=0", M),  # q=0 refuses JSON even under */*
        ("application/json;q=0", None),  # nothing acceptable: caller decides
        ("text/html", None),
        ("text/html, */*;q=0.8", J),
        ("application/msgpack;q=1.5", J),  # malformed q: element dropped, as if absent
        ("APPLICATION/MSGPACK", M),  # media types are case-insensitive
        ("application/json;charset=utf-8;q=0.2, application/msgpack;q=0.3", M),
        ("garbage", J),  # nothing parseable: as if absent
    ],
)
def test_media_type(accept: str | None, expected: str | None) -> None:
    assert negotiate_media_type(accept) == expected


def test_more_specific_range_overrides_less_specific() -> None:
    assert negotiate_media_type("application/*;q=0.1, application/msgpack;q=0.2") == M
    assert negotiate_media_type("application/msgpack;q=0, application/*") == J


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "identity"),  # absent: do not compress
        ("", "identity"),  # empty: no coding wanted (RFC 9110 §12.5.3)
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("gzip, deflate, br, zstd", "zstd"),  # equal q: server preference
        ("gzip, br", "br"),
        ("br;q=0.5, gzip", "gzip"),
        ("*", "zstd"),
        ("*;q=0.5, gzip", "gzip"),
        ("deflate", "identity"),  # unknown coding only: identity
        ("compress, snappy", "identity"),
        ("identity", "identity"),
        ("identity;q=0", None),  # identity refused and nothing else acceptable
        ("*;q=0", None),
        ("*;q=0, identity", "identity"),  # an explicit identity entry beats *
        ("identity;q=0, gzip;q=0.1", "gzip"),
        ("gzip;q=0.5, identity", "identity"),  # identity preferred over a worse coding
        ("gzip;q=0", "identity"),
        ("GZIP", "gzip"),
        ("gzip;q=abc", "identity"),  # malformed q: element dropped
        ("br;q=0.001", "br"),
    ],
)
def test_encoding(header: str | None, expected: str | None) -> None:
    assert negotiate_encoding(header, CODINGS) == expected


def test_qvalue_grammar() -> None:
    assert parse_qvalue("0") == 0.0
    assert parse_qvalue("1.000") == 1.0
    assert parse_qvalue("0.5") == 0.5
    for bad in ("", "2", "-0.1", "0.12345", "x", ".5"):
        assert parse_qvalue(bad) is None


def test_repeated_coding_keeps_highest_q() -> None:
    assert parse_accept_encoding("gzip;q=0.2, gzip;q=0.7") == {"gzip": 0.7}


def test_huge_headers_are_clamped_before_caching() -> None:
    from lagless.payload import _negotiation as neg

    huge = ", ".join(f"x-coding-{i};q=0.1" for i in range(5000)) + ", zstd"
    assert len(huge) > 10 * neg.MAX_HEADER_CHARS
    # cut at an element boundary: the tail (zstd) is not seen, the head still parses
    assert neg.negotiate_encoding(huge, ("zstd", "gzip")) == "identity"
    assert len(neg.parse_accept_encoding(huge)) < 200
    accept = "application/json;q=0.5, " + "text/x-" + "a" * 100_000
    assert neg.negotiate_media_type(accept) == "application/json"
    for cached in (neg._parse_accept_encoding_cached, neg._negotiate_encoding_cached):
        assert cached.cache_info().currsize <= 256

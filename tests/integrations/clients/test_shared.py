"""The helpers the client integrations share: folding keys and paths, exact patching."""

from __future__ import annotations

import logging

import pytest

from lagless.integrations._clients import Patches, as_text, fold, http_name, netloc


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("user:42:profile", "user:{}:profile"),
        ("session:3f1c9a2be4d84b7f9a1e0c3d2b5a6f70", "session:{}"),
        ("k:550e8400-e29b-41d4-a716-446655440000:x", "k:{}:x"),
        ("prefs:alice@example.com", "prefs:{}"),
        ("jwt:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0", "jwt:{}.{}"),
        ("tok:aB3xY9kLm2Qp7RtZ", "tok:{}"),  # mixed case and digits: a token, folded whole
        ("etag:deadbeefcafebabe", "etag:{}"),
        ("cache:user_preferences_v2", "cache:user_preferences_v{}"),  # readable name kept
        ("/users/42/orders", "/users/{}/orders"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_fold_bounds_long_keys() -> None:
    long_key = "a" * 5000 + "@"
    assert len(fold(long_key)) < 300


def test_long_keys_are_not_cached() -> None:
    """Regression: the cache held every distinct text whole, so 4096 huge keys or URL paths
    could pin that many megabytes."""
    import lagless.integrations._clients as clients

    clients._cached_fold.cache_clear()
    for i in range(10):
        fold(f"blob:{i}:" + "x" * 100_000)
    fold("user:1")
    assert clients._cached_fold.cache_info().currsize == 1


def test_as_text_and_http_name() -> None:
    assert as_text(b"user:1") == "user:1"
    assert as_text(7) == "7"
    assert http_name("get", "https", "api.example.com", "/u/12", raw=False) == (
        "GET https://api.example.com/u/{}"
    )
    assert http_name("get", "https", "h", "/u/12", raw=True) == "GET https://h/u/12"
    assert netloc("api.example.com", None) == "api.example.com"
    assert netloc("::1", 8080) == "[::1]:8080"


class Base:
    def hello(self) -> str:
        return "base"


class Child(Base):
    def own(self) -> str:
        return "own"


def test_patches_restore_inherited_and_own_methods_exactly() -> None:
    patches = Patches()
    own = Child.__dict__["own"]
    patches.wrap(Child, "hello", lambda orig: lambda self: "wrapped " + orig(self))
    patches.wrap(Child, "own", lambda orig: lambda self: "wrapped " + orig(self))
    assert Child().hello() == "wrapped base"
    assert Child().own() == "wrapped own"
    patches.restore()
    assert "hello" not in Child.__dict__  # inherited again, not pinned on the subclass
    assert Child.__dict__["own"] is own
    assert Child().hello() == "base"


def test_patches_leave_a_foreign_wrapper_in_place(caplog: pytest.LogCaptureFixture) -> None:
    class Target:
        def call(self) -> str:
            return "original"

    patches = Patches()
    patches.wrap(Target, "call", lambda orig: lambda self: "ours")

    def theirs(self: Target) -> str:
        return "theirs"

    Target.call = theirs  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="lagless"):
        patches.restore()
    assert Target().call() == "theirs"  # restoring under them would drop their wrapper
    assert "re-wrapped" in caplog.text

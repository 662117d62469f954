"""The integration contract: a failed install leaves nothing patched, automatic installation
survives one broken integration, and a misspelt exclusion is an error."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import ClassVar

import pytest

import lagless.integrations._base as base
from lagless._guard import internal_errors
from lagless.errors import IntegrationNotAvailable


class Target:
    def method(self) -> str:
        return "original"


ORIGINAL = Target.method


class Broken(base.Integration):
    """Patches one method, then fails (a library version it does not know)."""

    name: ClassVar[str] = "broken"
    module: ClassVar[str] = "json"

    def _install(self) -> None:
        Target.method = lambda self: "patched"  # type: ignore[method-assign]
        raise RuntimeError("unexpected library layout")

    def _uninstall(self) -> None:
        Target.method = ORIGINAL  # type: ignore[method-assign]


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch) -> Iterator[Broken]:
    inst = Broken()
    monkeypatch.setitem(base.INTEGRATIONS, "broken", "tests:Broken")
    monkeypatch.setitem(base._instances, "broken", inst)
    yield inst
    Target.method = ORIGINAL  # type: ignore[method-assign]


def test_failed_install_is_rolled_back(broken: Broken) -> None:
    with pytest.raises(RuntimeError, match="unexpected library layout"):
        broken.install()
    assert Target.method is ORIGINAL
    assert broken.installed is False


def test_automatic_install_skips_a_broken_integration(
    broken: Broken, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="lagless"):
        done = base.install_integrations(exclude=set(base.INTEGRATIONS) - {"broken", "sqlite3"})
    assert done == ["sqlite3"]
    assert internal_errors == {"install:broken": 1}
    assert "internal error in install:broken" in caplog.text
    assert Target.method is ORIGINAL
    with pytest.raises(RuntimeError):  # named explicitly: the caller hears of it
        base.install_integrations(["broken"])


def test_misspelt_exclusion_is_an_error() -> None:
    with pytest.raises(IntegrationNotAvailable, match="'sqllite3': no such lagless integration"):
        base.install_integrations(exclude=["sqllite3"])

"""The public surface: ``lagless.__all__`` is exactly what the package exports, sorted, and
every class and function in it says what it is for (httpx tests its ``__all__`` the same way)."""

from __future__ import annotations

import inspect
import types

import lagless


def _isort_key(name: str) -> tuple[int, str]:
    # ruff RUF022 ("isort-style"): CONSTANTS, then Classes, then everything else.
    if name.isupper():
        return 0, name
    if name[0].isupper():
        return 1, name
    return 2, name


def test_all_is_sorted() -> None:
    assert lagless.__all__ == sorted(lagless.__all__, key=_isort_key)


def test_all_matches_what_is_exported() -> None:
    exported = {
        name
        for name, value in vars(lagless).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"  # from __future__
    }
    # The cache, detectors, monitor and payload names load on first use (PEP 562).
    exported |= set(lagless._LAZY)
    assert set(lagless.__all__) - {"__version__"} == exported
    assert set(dir(lagless)) >= set(lagless.__all__)
    assert len(set(lagless.__all__)) == len(lagless.__all__)


def test_every_public_class_and_function_has_a_docstring() -> None:
    undocumented = []
    for name in lagless.__all__:
        value = getattr(lagless, name)
        if isinstance(value, type):
            doc = vars(value).get("__doc__")  # its own, not one inherited from a base
        elif inspect.isfunction(value) or inspect.isbuiltin(value):
            doc = value.__doc__
        else:
            continue  # constants and type aliases (documented with ``#:`` comments)
        if not (doc and doc.strip()):
            undocumented.append(name)
    assert undocumented == []


def test_lazy_names_resolve_and_unknown_names_raise() -> None:
    import pytest

    for name in lagless._LAZY:
        assert getattr(lagless, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lagless.nope  # noqa: B018

"""Exceptions lagless raises to its users."""

from __future__ import annotations


class LaglessError(Exception):
    """Base class of every error lagless raises on purpose."""


class ConfigError(LaglessError, ValueError):
    """A setting has a bad value or name. The message names the setting and where it came from
    (keyword argument, environment variable or pyproject.toml), and what was expected."""


class IntegrationNotAvailable(LaglessError):
    """An integration was asked for but its library is missing or too old."""

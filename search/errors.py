"""Errors a user can cause. The command line prints their message, not a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: the message says what was wrong and what to do."""


class DataError(UserError):
    """The data source is missing, unreadable or malformed."""


class ConfigError(UserError):
    """A configuration value is unknown or out of range."""


class SpaceError(UserError):
    """A search-space file is malformed."""


class TestSplitGuardError(RuntimeError):
    """The test split was requested from inside a search: never allowed."""

    __test__ = False  # not a pytest test class

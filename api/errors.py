"""Errors of the alert store, which callers turn into 503s, retries or a message."""

from __future__ import annotations


class StoreError(Exception):
    """The alert store could not do its job (database down, bad URL); callers answer 503 or retry."""


class CursorError(StoreError):
    """A pagination cursor that this store did not produce."""


class StoreURLError(StoreError):
    """A database URL this store cannot use: not a URL, an unknown scheme, or a driver that is not installed."""

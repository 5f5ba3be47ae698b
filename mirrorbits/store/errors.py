"""Errors raised by the Redis store layer."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every store error."""


class DatabaseNotReady(StoreError):
    """Redis is down, or the database version check has not completed yet."""


class MirrorNotFound(StoreError):
    """No mirror matches the given identifier."""


class NameTaken(StoreError):
    """Another mirror already uses this name."""


class ScanInProgress(StoreError):
    """A scan of the same target already holds the lock."""

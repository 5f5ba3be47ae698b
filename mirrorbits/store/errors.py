"""Errors raised by the Redis store layer."""

from __future__ import annotations

import txredisapi
from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError
from twisted.internet.defer import TimeoutError as DeferredTimeout


class StoreError(Exception):
    """Base class of every store error."""


class DatabaseNotReady(StoreError):
    """Redis is down, or the database version check has not completed yet."""


class ReadOnlyReplica(DatabaseNotReady):
    """Only a replica of Redis answers (no master): it is read from, a write must wait."""


#: What a command that would write is told while only a replica answers (one line).
READ_ONLY_REPLICA = ("Redis is a read-only replica (no master answers): nothing was changed; "
                     "run the command again once a master answers")


class MirrorNotFound(StoreError):
    """No mirror matches the given identifier."""


class NameTaken(StoreError):
    """Another mirror already uses this name."""


class ScanInProgress(StoreError):
    """A scan of the same target already holds the lock."""


#: What a failing or vanished Redis raises: background work says so in one line and retries.
REDIS_FAILURES: tuple[type[BaseException], ...] = (
    StoreError,
    txredisapi.RedisError,
    DeferredTimeout,
    CancelledError,
    net_error.ConnectError,
    net_error.ConnectionClosed,
    ConnectionError,
    TimeoutError,
)

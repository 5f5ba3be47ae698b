"""The Redis pool's reconnection attempts, kept out of the log.

txredisapi keeps each pooled connection with a Twisted ``ClientService``, which logs
"Scheduling retry N to connect ..." for every connection of the pool at every failed attempt:
about ten lines each time Redis goes away. The Redis service already says once that the
database is down and once that it is back (:mod:`mirrorbits.store.outage`), so those lines
are dropped; anything else a ``ClientService`` logs still goes through.
"""

from __future__ import annotations

from typing import cast

from twisted.application.internet import ClientService
from twisted.logger import ILogObserver, LogEvent, Logger, globalLogPublisher

RETRY_FORMAT_START = "Scheduling retry "


def _without_retries(event: LogEvent) -> None:
    if str(event.get("log_format") or "").startswith(RETRY_FORMAT_START):
        return
    globalLogPublisher(event)


QUIET_RETRIES = cast(ILogObserver, _without_retries)


def quiet_pool_retries() -> None:
    """Drop ``ClientService``'s per-attempt retry lines (idempotent)."""
    logger = ClientService.__dict__.get("_log")
    if isinstance(logger, Logger) and logger.observer is not QUIET_RETRIES:
        logger.observer = QUIET_RETRIES

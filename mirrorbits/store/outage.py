"""One line per Redis outage and background service, never a traceback.

A background service (health checks, liveness, verification, scans, stats flush...) whose
Redis vanishes, turns read-only or restarts mid-operation gets a connection or response
error. :func:`report` turns such a failure into one warning naming the service and the
problem, said once per outage (the next "Connected to redis master" starts a new one, and so
does a failure after :data:`QUIET` seconds without one: a Redis that refused writes, accepted
them again and refuses them anew never reconnected in between). Any
other failure is a bug: logged with its traceback as before. Once the daemon is stopping,
nothing is logged: whatever an operation it cut short raised is the stop, not news.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import txredisapi
from twisted.internet.defer import FirstError
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from mirrorbits.store.errors import REDIS_FAILURES

#: The first word of Redis' answer to a write it refuses while it still reads: a replica,
#: ``min-replicas-to-write`` unmet, ``maxmemory`` reached, a failed snapshot.
WRITE_REFUSALS = frozenset({"READONLY", "NOREPLICAS", "OOM", "MISCONF"})
#: The first word of Redis' answer while it cannot serve for a while: loading its data, busy
#: with a script, a replica without its master, a failover. Any other error answer is about
#: the command or the data (``WRONGTYPE``, ``NOSCRIPT``, ``ERR ...``): Redis is there.
UNAVAILABLE_STATES = frozenset({"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"})
#: What a service's unrecorded findings mean for the users meanwhile, said with its line.
_HELD = "a mirror it finds down is held down in memory: this node sends no user there"
_MEANWHILE = {"Liveness": _HELD, "Health check": _HELD}

#: Seconds without a Redis failure of a service after which its next one is said again.
QUIET = 60.0

_outage = 0  # bumped at each connection to a master: a new outage may then be reported
_said: dict[str, int] = {}  # service -> the outage it reported
_stopping = False
_failed: dict[str, float] = {}  # service -> when it last failed on Redis
_seconds: Callable[[], float] = time.monotonic


def use_clock(seconds: Callable[[], float]) -> None:
    """Read the time from ``seconds`` (the daemon's reactor) from now on."""
    global _seconds
    _seconds = seconds


def redis_cause(failure: Failure | BaseException) -> BaseException | None:
    """The Redis failure behind ``failure`` (looking inside ``gatherResults``' FirstError),
    or None when it is something else."""
    error = failure.value if isinstance(failure, Failure) else failure
    while isinstance(error, FirstError):
        inner = error.subFailure.value
        if not isinstance(inner, BaseException):
            return None
        error = inner
    return error if isinstance(error, REDIS_FAILURES) else None


def error_code(error: BaseException) -> str | None:
    """The first word of an error Redis answered (``WRONGTYPE``, ``READONLY``...); ``None``
    for any other failure."""
    if not isinstance(error, txredisapi.ResponseError):
        return None
    return str(error).split(" ", 1)[0]


def refuses_writes(error: BaseException) -> bool:
    """Whether ``error`` is Redis refusing a write (it is reachable and reads work)."""
    return error_code(error) in WRITE_REFUSALS


def answers_an_error(error: BaseException) -> bool:
    """Whether ``error`` is Redis, reachable, answering a command with an error that is
    neither a refused write nor a passing state (:data:`UNAVAILABLE_STATES`)."""
    code = error_code(error)
    return code is not None and code not in WRITE_REFUSALS and code not in UNAVAILABLE_STATES


def connected() -> None:
    """Redis is reachable again: each service may report the next outage."""
    global _outage
    _outage += 1


def stopping(now: bool) -> None:
    """Whether the daemon is stopping: operations it cuts short are then not reported."""
    global _stopping
    _stopping = now


def report(log: Logger, service: str, failure: Failure, what: str, **fields: object) -> None:
    """Log ``failure`` of ``service``: one line per outage when Redis is the cause, nothing
    while stopping, otherwise ``what`` with its traceback."""
    cause = redis_cause(failure)
    if cause is None:
        if not _stopping:
            log.failure(what, failure, LogLevel.critical, **fields)
        return
    now = _seconds()
    previous = _failed.get(service)
    _failed[service] = now
    quiet = previous is None or now - previous >= QUIET
    if _stopping or (_said.get(service) == _outage and not quiet):
        return
    _said[service] = _outage
    if refuses_writes(cause):
        meanwhile = _MEANWHILE.get(service)
        log.warn("{service}: Redis refuses writes ({error}); retried once it accepts them"
                 + ("; meanwhile {meanwhile}" if meanwhile else ""),
                 service=service, error=str(cause), meanwhile=meanwhile)
        return
    if answers_an_error(cause):
        log.warn("{service}: Redis answered an error ({error}); retried later",
                 service=service, error=str(cause))
        return
    log.warn("{service}: Redis unavailable ({error}); retried once it is back",
             service=service, error=str(cause) or type(cause).__name__)

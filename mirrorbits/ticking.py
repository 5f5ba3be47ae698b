"""The periodic loop of a service: a ``LoopingCall`` on the injected clock, started with
the service and stopped with it, and the operations still in flight cancelled."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from mirrorbits.logs import Logger

__all__ = ["cancel_all", "start_loop", "stop_loop", "stop_ticking"]


def start_loop(call: Callable[[], object], clock: IReactorTime, interval: float, *,
               now: bool, stopped: str | None = None, log: Logger | None = None) -> LoopingCall:
    """``call`` every ``interval`` seconds on ``clock`` (at once when ``now``), started.
    Should ``call`` fail, the loop ends and ``stopped`` is logged with the failure on the
    caller's ``log``."""
    loop = LoopingCall(call)
    loop.clock = clock
    ended: Deferred[LoopingCall] = loop.start(interval, now=now)
    if stopped is not None and log is not None:
        logger, message = log, stopped
        ended.addErrback(lambda failure: logger.failure(message, failure))
    return loop


def stop_loop(loop: LoopingCall | None) -> None:
    """Stop ``loop`` if it runs (``None``: never started)."""
    if loop is not None and loop.running:
        loop.stop()


def cancel_all(pending: Iterable[Deferred[None]]) -> None:
    """Cancel every operation in ``pending`` (a copy is taken: cancelling may remove them)."""
    for operation in list(pending):
        operation.cancel()


def stop_ticking(loop: LoopingCall | None, pending: Iterable[Deferred[None]]) -> Deferred[None]:
    """:func:`stop_loop` and :func:`cancel_all`: a service stopped at once (what its
    ``stopService`` returns)."""
    stop_loop(loop)
    cancel_all(pending)
    return succeed(None)

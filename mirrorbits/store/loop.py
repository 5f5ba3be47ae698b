"""The shape shared by the Redis and pub/sub services: one reconnecting coroutine.

A :class:`ReconnectLoop` runs ``_run`` (connect, serve, back off, retry) from start-up until
the service stops; ``_pause`` waits between attempts and ``_wake`` cuts the wait short (new
settings, a lost connection, stopping).
"""

from __future__ import annotations

import contextlib
from typing import ClassVar

from twisted.application.service import Service
from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from mirrorbits.logs import Logger

log = Logger()

# Seconds after start during which a service that has never connected stays quiet about
# failing to: a Redis started together with the daemon (the private one, or a unit started
# alongside) takes a moment to accept connections.
STARTUP_GRACE = 3.0


class ReconnectLoop(Service):
    """A service whose work is one long coroutine, cancelled (and awaited) when it stops.

    Subclasses (attrs classes) define the ``reactor``, ``_loop`` and ``_sleeping``
    attributes and :meth:`_run`; :meth:`_interrupt` and :meth:`_after_loop` adapt stopping.
    """

    reactor: IReactorTime
    _loop: Deferred[None] | None
    _sleeping: Deferred[None] | None
    loop_name: ClassVar[str] = "Connection loop"
    _started_at: float | None = None  # None once connected: no grace any more

    async def _run(self) -> None:
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Make the cancelled loop end promptly (by default, cut its pause short)."""
        self._wake()

    async def _after_loop(self) -> None:
        """Clean up once the loop has ended at stop."""

    def _starting_quietly(self) -> bool:
        """Whether a failure to connect is still part of starting up (see STARTUP_GRACE)."""
        started = self._started_at
        return started is not None and self.reactor.seconds() - started < STARTUP_GRACE

    def _connected_once(self) -> None:
        self._started_at = None

    def startService(self) -> None:
        super().startService()
        self._started_at = self.reactor.seconds()
        self._loop = Deferred.fromCoroutine(self._run())
        self._loop.addErrback(_crashed, f"{self.loop_name} crashed")

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self._shutdown())

    async def _shutdown(self) -> None:
        if self._loop is not None:
            loop, self._loop = self._loop, None
            loop.cancel()
            self._interrupt()
            with contextlib.suppress(Exception):
                await loop
        await self._after_loop()

    def _wake(self) -> None:
        if self._sleeping is not None:
            self._sleeping.cancel()

    async def _pause(self, seconds: float) -> None:
        self._sleeping = task.deferLater(self.reactor, seconds, lambda: None)
        try:
            await self._sleeping
        except CancelledError:
            pass  # woken up early
        finally:
            self._sleeping = None


def _crashed(failure: Failure, what: str) -> None:
    if not failure.check(CancelledError):
        log.failure(what, failure)

"""The HTTP side of an upgrade: a listener that waits before serving, and drains its
connections before the old process stops."""

from __future__ import annotations

import socket
import weakref
from collections.abc import Callable
from typing import Any, Protocol, cast

from attrs import define
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IAddress, IReactorTime, ITransport
from twisted.internet.protocol import ServerFactory
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from mirrorbits.listen import AdoptedListener
from mirrorbits.logs import Logger

READY_TIMEOUT = 10.0  # seconds the successor waits for Redis before serving anyway
POLL_INTERVAL = 0.05

log = Logger()


class Drainable(Protocol):
    """What a drain asks of a connection (:class:`mirrorbits.web.site.RedirectorChannel`)."""

    transport: ITransport | None

    def close_after_answer(self) -> None: ...

    def close_if_idle(self) -> bool: ...


class ConnectionTracker(ServerFactory):
    """Builds the connections of ``factory`` and remembers them (weakly) for a drain."""

    noisy = False

    def __init__(self, factory: ServerFactory) -> None:
        self.factory = factory
        self.connections: weakref.WeakSet[Drainable] = weakref.WeakSet()

    def logPrefix(self) -> str:
        """What Twisted's port lines call the listener: what ``factory`` calls it."""
        prefix = getattr(self.factory, "logPrefix", None)
        return prefix() if callable(prefix) else type(self.factory).__name__

    def doStart(self) -> None:
        self.factory.doStart()

    def doStop(self) -> None:
        self.factory.doStop()

    def buildProtocol(self, addr: IAddress | None) -> Any:  # what ``factory`` builds
        connection = self.factory.buildProtocol(addr)
        if connection is not None:
            self.connections.add(cast(Drainable, connection))  # an HTTP site's channel
        return connection

    def open_connections(self) -> list[Drainable]:
        return [connection for connection in list(self.connections)
                if getattr(connection.transport, "connected", False)]


def keep_socket_file(port: Any) -> None:
    """Stop a UNIX ``port`` from breaking the socket it shares with the successor.

    Twisted's UNIX port, even an adopted one, ``shutdown()``s the listening socket (for every
    process) and deletes its file when it stops listening (TCP ports skip the shutdown for
    adopted sockets). An abstract-namespace path is never deleted.
    """
    if getattr(port, "addressFamily", None) == socket.AF_UNIX and hasattr(port, "_bindPath"):
        port._shouldShutdown = False
        port._bindPath = "\0"


@define(eq=False)
class HeldListener(AdoptedListener):
    """An :class:`AdoptedListener` that starts accepting once ``hold()`` fires, and lets its
    connections finish when the process hands over (:meth:`drain`).

    A successor shares the listening socket with its still-serving parent: it waits until
    it can answer as well (Redis connected), then calls ``on_serving``. ``factory`` is
    served through a :class:`ConnectionTracker`.
    """

    hold: Callable[[], Deferred[None]] | None = None
    on_serving: Callable[[], None] | None = None
    _pending: Deferred[None] | None = None

    def __attrs_post_init__(self) -> None:
        self.factory = self.tracker = ConnectionTracker(self.factory)

    def open_connections(self) -> int:
        return len(self.tracker.open_connections())

    async def drain(self, clock: IReactorTime, timeout: float, idle_grace: float) -> int:
        """Let every open connection end cleanly; how many are still open after ``timeout``.

        Every answer from now on says ``Connection: close`` and ends its connection, so a
        client sends nothing more on it. A connection with no request for ``idle_grace``
        seconds is closed, unless a request waits unread: a client holding an idle keep-alive
        connection must not keep this process alive, but a busy one may be sending its next
        request right now.
        """
        for connection in self.tracker.open_connections():
            connection.close_after_answer()
        started = clock.seconds()
        while self.open_connections():
            waited = clock.seconds() - started
            if waited >= timeout:
                break
            if waited >= idle_grace:
                for connection in self.tracker.open_connections():
                    connection.close_if_idle()
            await deferLater(clock, POLL_INTERVAL, lambda: None)
        return self.open_connections()

    async def hand_over(self, clock: IReactorTime, timeout: float, idle_grace: float) -> int:
        """Stop accepting (the socket stays usable by the process that takes over), then
        :meth:`drain`; how many connections were still open after ``timeout``."""
        keep_socket_file(self.port)
        await maybeDeferred(self.stopService)
        return await self.drain(clock, timeout, idle_grace)

    def startService(self) -> None:
        if self.hold is None:
            self._serve()
            return
        self.bind()  # errors surface now
        pending = self._pending = self.hold()
        pending.addCallback(lambda _: self._serve())
        pending.addErrback(lambda failure: None if failure.check(CancelledError) else failure)
        pending.addErrback(lambda failure: log.failure("Cannot serve HTTP", failure))

    def _serve(self) -> None:
        self._pending = None
        super().startService()
        if self.on_serving is not None:
            self.on_serving()

    def stopService(self) -> Deferred[None] | None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
        return super().stopService()


def ready_within(ready: Deferred[None], clock: IReactorTime, timeout: float) -> Deferred[None]:
    """``ready``, or None after ``timeout`` seconds with a warning."""

    def late(failure: Failure) -> None:
        failure.trap(DeferredTimeout)
        log.warn("The database is not ready after {timeout:.0f}s: serving anyway",
                 timeout=timeout)

    return ready.addTimeout(timeout, clock).addErrback(late)

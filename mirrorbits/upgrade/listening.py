"""The HTTP side of an upgrade: a listener that waits before serving, a site that drains."""

from __future__ import annotations

import socket
import weakref
from collections.abc import Callable
from typing import Any

from attrs import define
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from mirrorbits.listen import AdoptedListener
from mirrorbits.logs import Logger
from mirrorbits.web.site import RedirectorChannel, RedirectorSite

READY_TIMEOUT = 10.0  # seconds the successor waits for Redis before serving anyway
POLL_INTERVAL = 0.05

log = Logger()


class DrainableSite(RedirectorSite):
    """A :class:`RedirectorSite` that knows its open connections, to let them finish."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._channels: weakref.WeakSet[RedirectorChannel] = weakref.WeakSet()

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        if channel is not None:
            self._channels.add(channel)
        return channel

    def open_connections(self) -> int:
        return len(self._open_channels())

    async def drain(self, clock: IReactorTime, timeout: float, idle_grace: float) -> int:
        """Let every open connection end cleanly; how many are still open after ``timeout``.

        Every answer from now on says ``Connection: close`` and ends its connection, so a
        client sends nothing more on it. A connection with no request for ``idle_grace``
        seconds is closed, unless a request waits unread: a client holding an idle keep-alive
        connection must not keep this process alive, but a busy one may be sending its next
        request right now.
        """
        for channel in self._open_channels():
            channel.close_after_answer()
        started = clock.seconds()
        while self.open_connections():
            waited = clock.seconds() - started
            if waited >= timeout:
                break
            if waited >= idle_grace:
                for channel in self._open_channels():
                    channel.close_if_idle()
            await deferLater(clock, POLL_INTERVAL, lambda: None)
        return self.open_connections()

    def _open_channels(self) -> list[RedirectorChannel]:
        return [channel for channel in list(self._channels)
                if getattr(channel.transport, "connected", False)]


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
    """An :class:`AdoptedListener` that starts accepting once ``hold()`` fires.

    A successor shares the listening socket with its still-serving parent: it waits until
    it can answer as well (Redis connected), then calls ``on_serving``.
    """

    hold: Callable[[], Deferred[None]] | None = None
    on_serving: Callable[[], None] | None = None
    _pending: Deferred[None] | None = None

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

    def stopService(self) -> Any:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
        return super().stopService()


def ready_within(ready: Deferred[None], clock: Any, timeout: float) -> Deferred[None]:
    """``ready``, or None after ``timeout`` seconds with a warning."""

    def late(failure: Failure) -> None:
        failure.trap(DeferredTimeout)
        log.warn("The database is not ready after {timeout:.0f}s: serving anyway",
                 timeout=timeout)

    return ready.addTimeout(timeout, clock).addErrback(late)

"""When a control connection that does nothing is closed (pure: timing on an injected clock).

A connection gets :data:`UNAUTHENTICATED_TIMEOUT` seconds from its start (a TLS handshake
included) to send a command with the right password; commands with a wrong one do not extend
it. Once a right password came, the connection is closed after ``RPCIdleTimeout`` seconds
(:data:`IDLE_TIMEOUT` by default) without a command: the time runs only while no command is
being answered (a scan may take longer), from the end of the last one. This bounds what
forgotten, stalled or half-open connections (a peer gone without closing) hold. The close is
a clean one; a connection still open :data:`ABORT_AFTER` seconds later (its last bytes not
taken by a peer that is gone) is aborted.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import define
from twisted.internet.interfaces import IDelayedCall, IReactorTime

UNAUTHENTICATED_TIMEOUT = 10.0
IDLE_TIMEOUT = 300.0
ABORT_AFTER = 5.0


@define(eq=False)
class IdleTimeout:
    """Calls ``close`` once the connection it watches did nothing for too long, then
    ``abort`` if it is still not closed after :data:`ABORT_AFTER` seconds."""

    clock: IReactorTime
    close: Callable[[], None]
    abort: Callable[[], None]
    unauthenticated_timeout: float = UNAUTHENTICATED_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    _running: int = 0
    _authenticated: bool = False
    _pending: IDelayedCall | None = None

    def connected(self) -> None:
        """The connection starts: it has a short time to prove its password."""
        self._arm(self.unauthenticated_timeout)

    def authenticated(self) -> None:
        """A command carried the right password: only idleness closes it from now on."""
        if self._authenticated:
            return
        self._authenticated = True
        self._cancel()
        if not self._running:
            self._arm(self.idle_timeout)

    def command_started(self) -> None:
        self._running += 1
        if self._authenticated:
            self._cancel()

    def command_ended(self) -> None:
        self._running = max(self._running - 1, 0)
        if self._authenticated and not self._running:
            self._arm(self.idle_timeout)

    def disconnected(self) -> None:
        self._cancel()

    def _arm(self, seconds: float) -> None:
        self._cancel()
        self._pending = self.clock.callLater(seconds, self._expired)

    def _cancel(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and pending.active():
            pending.cancel()

    def _expired(self) -> None:
        self._pending = self.clock.callLater(ABORT_AFTER, self._still_open)
        self.close()

    def _still_open(self) -> None:
        self._pending = None
        self.abort()

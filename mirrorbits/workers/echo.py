"""One line for one Redis event, however many processes saw it.

Every process holds its own Redis connections, so one outage was said by each of them:
``Database is down``, ``Pub/sub connection lost``, ``Connected to redis master``, ``Pub/sub
subscribed again``, once by the daemon and once more by every worker. A worker marks its lines
of the store modules (:data:`mirrorbits.workers.wire.SHARED`); the daemon relays such a line
at debug level when it, or another worker, said the same within :data:`ECHO_WINDOW`; a serving
worker's is held :data:`ECHO_HOLD` first, since the daemon may see the same event a moment
later (a starting worker's own connection is said at once, in order). A warning or error the
daemon said, and has not said the end of since (a line of its at info level), is a repeat
however old: a worker replaced during an outage finds Redis as the daemon said it is. A worker
alone losing its connection is still said, that much later.
"""

from __future__ import annotations

from typing import Final

from attrs import define, field
from twisted.internet.interfaces import IReactorTime
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent
from zope.interface import implementer

#: Seconds during which a line said again is taken as the same event.
ECHO_WINDOW: Final = 5.0
#: Seconds a worker's line is held, waiting for the daemon to say the same.
ECHO_HOLD: Final = 2.0
#: The log namespaces of what every process shares (one Redis, seen by all).
ECHOED_NAMESPACES: Final = ("mirrorbits.store.",)


@implementer(ILogObserver)
@define(eq=False)
class DaemonEchoes:
    """The lines about Redis said lately, by text: the daemon's own (as an
    ``ILogObserver``) and the workers' relayed ones (:meth:`said`)."""

    clock: IReactorTime
    _said: dict[str, float] = field(factory=dict)
    # the daemon's warnings and errors about Redis since its last line at info level: the
    # state it is in (a replica, down), however long ago it was said
    _standing: set[str] = field(factory=set)

    def __call__(self, event: LogEvent) -> None:
        if str(event.get("log_namespace", "")).startswith(ECHOED_NAMESPACES):
            text = formatEvent(event)
            self.said(text)
            level = event.get("log_level")
            if level in (LogLevel.warn, LogLevel.error, LogLevel.critical):
                self._standing.add(text)
            else:  # connected again, subscribed again: the state it said is over
                self._standing.clear()

    def said(self, text: str) -> None:
        """Remember that ``text`` was said now."""
        now = self.clock.seconds()
        self._said = {line: when for line, when in self._said.items()
                      if now - when <= ECHO_WINDOW}
        self._said[text] = now

    def repeats(self, text: str) -> bool:
        """Whether ``text`` was said within the window, or is the state the daemon said it
        is in (a worker started during an outage finds the same replica, or the same
        refused connection, as the daemon did minutes before)."""
        if text in self._standing:
            return True
        when = self._said.get(text)
        return when is not None and self.clock.seconds() - when <= ECHO_WINDOW

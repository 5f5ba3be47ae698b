"""One line for one Redis event, however many processes saw it.

Every process holds its own Redis connections, so one outage was said by each of them:
``Database is down``, ``Pub/sub connection lost``, ``Connected to redis master``, ``Pub/sub
subscribed again``, once by the daemon and once more by every worker. A worker marks its lines
of the store modules (:data:`mirrorbits.workers.wire.SHARED`); the daemon relays such a line
at debug level when it, or another worker, said the same within :data:`ECHO_WINDOW`; a serving
worker's is held :data:`ECHO_HOLD` first, since the daemon may see the same event a moment
later (a starting worker's own connection is said at once, in order). A worker alone losing
its connection is still said, that much later.
"""

from __future__ import annotations

from typing import Final

from attrs import define, field
from twisted.internet.interfaces import IReactorTime
from twisted.logger import ILogObserver, LogEvent, formatEvent
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

    def __call__(self, event: LogEvent) -> None:
        if str(event.get("log_namespace", "")).startswith(ECHOED_NAMESPACES):
            self.said(formatEvent(event))

    def said(self, text: str) -> None:
        """Remember that ``text`` was said now."""
        now = self.clock.seconds()
        self._said = {line: when for line, when in self._said.items()
                      if now - when <= ECHO_WINDOW}
        self._said[text] = now

    def repeats(self, text: str) -> bool:
        """Whether ``text`` was said within the window."""
        when = self._said.get(text)
        return when is not None and self.clock.seconds() - when <= ECHO_WINDOW

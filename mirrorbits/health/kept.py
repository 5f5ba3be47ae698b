"""Connections kept open between the ``HEAD``s of one turn of the file verification: a
mirror asked several files in a row is asked them over one connection, not a burst of new
ones.

Each request's address rule (:mod:`mirrorbits.health.redirects`) is applied to the connection
it goes over, new or kept; a connection is kept :data:`KEPT_FOR` seconds after its last
answer, one per host and port, then closed: no idle connection lingers between turns.
"""

from __future__ import annotations

from collections.abc import Hashable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS
from twisted.web.iweb import IAgent

from mirrorbits.health.probe import CONNECT_TIMEOUT, MAX_ANSWER
from mirrorbits.health.redirects import AddressRule
from mirrorbits.httppool import QuietConnectionPool
from mirrorbits.reactors import IConnectingReactor

#: Seconds an idle connection is kept: enough for the next ``HEAD`` of the same turn.
KEPT_FOR = 1

__all__ = ["KEPT_FOR", "KeptConnections"]


class _View(QuietConnectionPool):
    """One request's view of the kept connections: ``admit`` judges the connection it gets,
    whether new or kept (a kept one was admitted under another request's rule)."""

    def __init__(self, reactor: IConnectingReactor, kept: QuietConnectionPool,
                 admit: AddressRule) -> None:
        super().__init__(reactor, MAX_ANSWER, admit, persistent=True)
        self._connections = kept._connections
        self._timeouts = kept._timeouts
        self.maxPersistentPerHost = 1
        self.cachedConnectionTimeout = KEPT_FOR
        # a kept connection the mirror closed meanwhile fails the request (one lost
        # verification) rather than being retried over a connection no rule judged
        self.retryAutomatically = False
        self._rule = admit

    def getConnection(self, key: Hashable,
                      endpoint: IStreamClientEndpoint) -> Deferred[HTTP11ClientProtocol]:
        connecting = super().getConnection(key, endpoint)
        return connecting.addCallback(self._admitted, self._rule)


class KeptConnections:
    """The agents of the verification's requests, sharing the kept connections."""

    def __init__(self, reactor: IConnectingReactor) -> None:
        self._reactor = reactor
        self._kept = QuietConnectionPool(reactor, MAX_ANSWER, persistent=True)
        self._policy = BrowserLikePolicyForHTTPS()

    def agent(self, admit: AddressRule) -> IAgent:
        """An agent for one request (or one redirect of it) under ``admit``."""
        return Agent(self._reactor, contextFactory=self._policy, connectTimeout=CONNECT_TIMEOUT,
                     pool=_View(self._reactor, self._kept, admit))

    def close(self) -> Deferred[None]:
        """Close every kept connection."""
        closing: Deferred[None] = self._kept.closeCachedConnections()
        return closing

    @property
    def open(self) -> int:
        """Connections kept now (idle)."""
        return sum(len(connections) for connections in self._kept._connections.values())

"""The HTTP connection pool of the monitor's one-shot requests (health checks, trace files)."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory


class _QuietFactory(_HTTP11ClientFactory):
    noisy = False


class QuietConnectionPool(HTTPConnectionPool):
    """A pool that keeps no connection open and logs nothing per connection.

    Twisted's connection factories log ``Starting factory`` and ``Stopping factory`` for
    each connection: two lines per mirror at every health check.
    """

    _factory = _QuietFactory  # HTTPConnectionPool's (documented) connection factory hook

    def __init__(self, reactor: IReactorTime) -> None:
        super().__init__(reactor, persistent=False)

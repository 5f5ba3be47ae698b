"""The HTTP connection pool of the monitor's requests (health checks, trace files, HTTP scans)."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory


class _QuietFactory(_HTTP11ClientFactory):
    noisy = False


class QuietConnectionPool(HTTPConnectionPool):
    """A pool that logs nothing per connection and, unless ``persistent``, keeps none open.

    Twisted's connection factories log ``Starting factory`` and ``Stopping factory`` for
    each connection: two lines per mirror at every health check.
    """

    _factory = _QuietFactory  # HTTPConnectionPool's (documented) connection factory hook

    def __init__(self, reactor: IReactorTime, persistent: bool = False) -> None:
        super().__init__(reactor, persistent=persistent)

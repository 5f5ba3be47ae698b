"""The HTTP connection pool of the monitor's requests (health checks, trace files, HTTP scans).

An answer read from a mirror can be capped: a connection that has received more than its
pool's ``limit`` bytes (status line, headers and body together) is aborted and the request
fails with :class:`AnswerTooLarge`. Health checks and trace fetches have one connection per
request (none is kept), so the cap bounds what one answer can make the process hold; the
HTTP scan keeps its connections and caps each page itself.

A pool can also be given an address rule: once a connection is made, and before anything
but a TLS greeting is sent on it, the peer's address is shown to the rule; a refused one is
closed and the request fails with :class:`AddressRefused` (the health checks' redirect
policy).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IReactorTime,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.python.failure import Failure
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory
from twisted.web.http import _DataLoss

__all__ = ["AddressRefused", "AnswerTooLarge", "QuietConnectionPool", "caused_by",
           "describe_error", "describe_size"]


def describe_size(limit: int) -> str:
    """``128 KiB`` for 131072, ``17 bytes`` for 17."""
    return f"{limit // 1024} KiB" if limit % 1024 == 0 and limit else f"{limit} bytes"


class AnswerTooLarge(Exception):
    """The mirror's answer went past the size allowed for it."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than {describe_size(limit)}")
        self.limit = limit


class AddressRefused(Exception):
    """The connection reached an address its pool's rule refuses (the text says why)."""


class _CappedProtocol(HTTP11ClientProtocol):
    """Aborts the connection once more than ``limit`` bytes have arrived on it."""

    def __init__(self, quiescent: Callable[[HTTP11ClientProtocol], None] | None,
                 limit: int) -> None:
        super().__init__(quiescent)
        self._limit = limit
        self._received = 0

    def dataReceived(self, data: bytes) -> None:
        self._received += len(data)
        if self._received <= self._limit:
            super().dataReceived(data)
            return
        if self._parser is None:
            return  # already given up: what was read in the same turn is dropped
        cast(ITCPTransport, self.transport).abortConnection()  # TCP or TLS: both abort
        self._disconnectParser(Failure(AnswerTooLarge(self._limit)))


class _QuietFactory(_HTTP11ClientFactory):
    noisy = False

    def __init__(self, quiescent: Callable[[HTTP11ClientProtocol], None], metadata: object,
                 limit: int | None) -> None:
        super().__init__(quiescent, metadata)
        self._limit = limit

    def buildProtocol(self, addr: IAddress | None) -> HTTP11ClientProtocol:
        if self._limit is None:
            return HTTP11ClientProtocol(self._quiescentCallback)
        return _CappedProtocol(self._quiescentCallback, self._limit)


class QuietConnectionPool(HTTPConnectionPool):
    """A pool that logs nothing per connection, caps what one connection may receive at
    ``limit`` bytes (``None``: no cap) and, unless ``persistent``, keeps no connection open.

    Twisted's connection factories log ``Starting factory`` and ``Stopping factory`` for
    each connection: two lines per mirror at every health check.
    """

    def __init__(self, reactor: IReactorTime, limit: int | None = None,
                 admit: Callable[[IAddress], str | None] | None = None, *,
                 persistent: bool = False) -> None:
        super().__init__(reactor, persistent=persistent)
        self.limit = limit
        self._admit = admit

    def _newConnection(self, key: Hashable,
                       endpoint: IStreamClientEndpoint) -> Deferred[HTTP11ClientProtocol]:
        factory = _QuietFactory(lambda protocol: self._putConnection(key, protocol),
                                repr(endpoint), self.limit)
        connecting: Deferred[HTTP11ClientProtocol] = endpoint.connect(factory)  # type: ignore[assignment]
        if self._admit is not None:
            connecting.addCallback(self._admitted, self._admit)
        return connecting

    @staticmethod
    def _admitted(protocol: HTTP11ClientProtocol,
                  admit: Callable[[IAddress], str | None]) -> HTTP11ClientProtocol:
        transport = cast(ITCPTransport, protocol.transport)
        refusal = admit(transport.getPeer())
        if refusal is not None:
            transport.abortConnection()
            raise AddressRefused(refusal)
        return protocol


def caused_by(err: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``err``, or one of the reasons Twisted wraps in it, is a ``kind``."""
    if isinstance(err, kind):
        return True
    return any(caused_by(reason.value, kind) for reason in getattr(err, "reasons", None) or ())


def describe_error(err: BaseException) -> str:
    """One line for a failed request: the reasons Twisted wraps in ``ResponseFailed`` and
    friends, else the exception's text or its type's name."""
    reasons = getattr(err, "reasons", None)
    if reasons:
        # _DataLoss only says that the body ended early: the other reason says why.
        told = [r.value for r in reasons if not isinstance(r.value, _DataLoss)] or [
            r.value for r in reasons]
        return "; ".join(describe_error(reason) for reason in told)
    return str(err) or type(err).__name__

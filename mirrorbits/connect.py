"""Client connections that log nothing: Twisted's ``connectProtocol`` factory logs
``Starting factory`` and ``Stopping factory`` around every connection."""

from __future__ import annotations

from typing import TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol

P = TypeVar("P", bound=Protocol)


class _OneProtocol(Factory):
    noisy = False

    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        return self._protocol


def connect_quietly(endpoint: IStreamClientEndpoint, protocol: P) -> Deferred[P]:
    """Connect ``protocol`` through ``endpoint`` (as ``connectProtocol``), silently."""
    connecting = endpoint.connect(_OneProtocol(protocol))
    return connecting.addCallback(lambda _: protocol)

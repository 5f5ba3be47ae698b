# mypy: disable-error-code="untyped-decorator"
"""Held connections in-process, on the real reactor against real listening sockets on
loopback: one idle connection per endpoint; lost, it is opened again (at most once per gap);
lost and refused, the loss is reported at once."""

from __future__ import annotations

import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol

from mirrorbits.health.endpoint import Endpoint
from mirrorbits.health.held import HeldConnections, Key
from tests.integration.store_support import eventually, sleep

pytestmark = pytest.mark.integration

HOST = "127.0.0.91"


class Accepting(Factory):
    """Counts the connections it accepts and can close them all."""

    def __init__(self, close_at_once: bool = False) -> None:
        self.accepted = 0
        self.open: list[Protocol] = []
        self.close_at_once = close_at_once

    def buildProtocol(self, addr: Any) -> Protocol:
        self.accepted += 1
        factory = self

        class Accepted(Protocol):
            def connectionMade(self) -> None:
                factory.open.append(self)
                if factory.close_at_once and self.transport is not None:
                    self.transport.loseConnection()

            def connectionLost(self, reason: Any = None) -> None:
                if self in factory.open:
                    factory.open.remove(self)

        return Accepted()

    def close_all(self) -> None:
        for protocol in list(self.open):
            if protocol.transport is not None:
                protocol.transport.loseConnection()


def start(factory: Accepting, port: int = 0) -> IListeningPort:
    return reactor.listenTCP(port, factory, interface=HOST)


def following(port: IListeningPort) -> tuple[HeldConnections, list[tuple[str, Key, str]]]:
    said: list[tuple[str, Key, str]] = []
    held = HeldConnections(reactor, lambda key, error: said.append(("refused", key, error)),
                           lambda key, error: said.append(("failed", key, error)))
    held.follow({(1, 1): Endpoint(1, HOST, port.getHost().port)}, 1.0, 1.0)
    return held, said


@pytest_twisted.ensureDeferred
async def test_one_connection_is_held_and_opened_again_after_an_idle_close() -> None:
    server = Accepting()
    port = start(server)
    held, said = following(port)
    try:
        await eventually(lambda: held.held == {(1, 1)}, 5)
        await sleep(1.5)
        assert server.accepted == 1 and len(server.open) == 1  # held, not reopened

        server.close_all()  # the server's idle timeout: a normal close, still listening
        await eventually(lambda: server.accepted == 2 and held.held == {(1, 1)}, 5)
        assert said == []

        held.follow({}, 1.0, 1.0)  # no longer followed (down, removed): closed
        await eventually(lambda: not server.open, 5)
        await sleep(1.2)
        assert server.accepted == 2 and said == []
    finally:
        held.close_all()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_stopped_server_is_reported_refused_within_milliseconds() -> None:
    server = Accepting()
    port = start(server)
    held, said = following(port)
    try:
        await eventually(lambda: held.held == {(1, 1)}, 5)
        await sleep(1.1)  # the gap since the opening has passed
        await port.stopListening()
        stopped = time.monotonic()
        server.close_all()  # what the kernel does when the server process exits
        await eventually(lambda: bool(said), 2)
        seen_after = time.monotonic() - stopped
        kind, key, error = said[0]
        assert (kind, key) == ("refused", (1, 1)) and "refused" in error
        print(f"\nrefused reported {seen_after * 1000:.0f} ms after the stop")
        assert seen_after < 0.5, seen_after
        assert held.held == frozenset()
    finally:
        held.close_all()


@pytest_twisted.ensureDeferred
async def test_a_server_closing_every_connection_at_once_gets_one_per_gap() -> None:
    server = Accepting(close_at_once=True)
    port = start(server)
    held, said = following(port)
    try:
        await sleep(3.5)
        assert 3 <= server.accepted <= 5, server.accepted  # gap 1 s: 0, 1, 2, 3 s
        assert said == []
    finally:
        held.close_all()
        await port.stopListening()

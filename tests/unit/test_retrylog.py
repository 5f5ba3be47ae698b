"""The Redis pool's retry lines are dropped; whatever else ClientService logs is kept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.application.internet import ClientService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from zope.interface import implementer

from mirrorbits.store.retrylog import quiet_pool_retries


@implementer(IStreamClientEndpoint)
class Refusing:
    """An endpoint whose every connection attempt fails at once."""

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        failed: Deferred[IProtocol] = Deferred()
        failed.errback(ConnectionRefusedError("refused"))
        return failed


@pytest.fixture
def said() -> Iterator[list[str]]:
    lines: list[str] = []

    def observe(event: LogEvent) -> None:
        if event.get("log_namespace", "").startswith("twisted.application"):
            lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def test_retries_are_dropped_and_other_messages_kept(said: list[str]) -> None:
    quiet_pool_retries()
    quiet_pool_retries()  # idempotent
    clock = Clock()
    service = ClientService(Refusing(), Factory.forProtocol(Protocol), clock=clock,
                            retryPolicy=lambda attempt: 1.0)
    service.startService()
    clock.advance(1.0)
    clock.advance(1.0)  # three failed attempts, each followed by a retry
    service.startService()  # a warning of its own
    service.stopService()
    assert len(said) == 1 and said[0].startswith("Duplicate ClientService.startService"), said
